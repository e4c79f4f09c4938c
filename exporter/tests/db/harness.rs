//! The throw-away cluster the harness falls back to when no server answers.

use archon_mcp_exporter::testing::LocalCluster;
use tokio_postgres::NoTls;

#[tokio::test]
async fn a_local_cluster_starts_answers_and_is_removed() {
    let cluster = match tokio::task::spawn_blocking(LocalCluster::start).await.unwrap() {
        Ok(cluster) => cluster,
        Err(e) if e.contains("apt-get install postgresql") => {
            // No server binaries here: say so loudly rather than pass quietly.
            panic!("cannot test the throw-away cluster: {e}");
        }
        Err(e) => panic!("{e}"),
    };
    let (client, connection) = tokio_postgres::connect(&cluster.connection_string("postgres"), NoTls).await.unwrap();
    tokio::spawn(connection);
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(client);

    let dir = cluster.data_dir().to_path_buf();
    assert!(dir.exists());
    tokio::task::spawn_blocking(move || drop(cluster)).await.unwrap();
    assert!(!dir.exists(), "the cluster's directory is removed");
}
