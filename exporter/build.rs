fn main() {
    // The schema is embedded from migrations/: a new or changed migration must rebuild.
    println!("cargo:rerun-if-changed=migrations");
}
