//! A small knowledge and task server — the MCP server of the demo, the examples and the
//! end-to-end tests: `search_knowledge`, `get_document`, `list_tasks`, `create_task` (which can
//! fail) and `summarize_document` (which reports model usage).
//!
//! ```no_run
//! use archon_mcp_instrument::{TracedConfig, TracedExt};
//! use archon_mcp_otel::knowledge::KnowledgeServer;
//! use rmcp::ServiceExt;
//! # async fn run() -> anyhow::Result<()> {
//! let server = KnowledgeServer::new().traced(TracedConfig::default()).serve(rmcp::transport::stdio()).await?;
//! server.waiting().await?;
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};

use archon_mcp_instrument::usage::{self, Usage};
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Value, json};

const DOCUMENTS: &[(&str, &str)] = &[
    ("onboarding", "How to set up a development machine: install Rust, PostgreSQL and the MCP client of your choice."),
    ("postgres-tuning", "Batch inserts with unnest, keep indexes few, partition by month, vacuum regularly."),
    ("mcp-sessions", "An analytics session starts with the first tool call of a connection and ends when it closes."),
    ("cost-allocation", "Tokens times the model's list price, grouped by user and department, month by month."),
];

/// The model `summarize_document` reports.
pub const SUMMARY_MODEL: &str = "claude-sonnet-4-5";

/// The knowledge and task server. Clones share the task list.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeServer {
    tasks: Arc<Mutex<Vec<String>>>,
}

impl KnowledgeServer {
    /// An empty task list.
    pub fn new() -> Self {
        Self::default()
    }
}

fn tool(name: &'static str, description: &'static str, schema: Value) -> Tool {
    Tool::new(name, description, Arc::new(schema.as_object().cloned().unwrap_or_default()))
}

fn tools() -> Vec<Tool> {
    let query = json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]});
    let id = json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]});
    vec![
        tool("search_knowledge", "Search the knowledge base", query),
        tool("get_document", "Read one document", id.clone()),
        tool("list_tasks", "List open tasks", json!({"type": "object", "properties": {}})),
        tool(
            "create_task",
            "Create a task (titles are unique)",
            json!({"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}),
        ),
        tool("summarize_document", "Summarize a document with a language model", id),
    ]
}

fn text(value: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value)])
}

fn string_arg<'a>(args: &'a JsonObject, name: &str) -> Result<&'a str, McpError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| McpError::invalid_params(format!("missing string argument `{name}`"), None))
}

impl ServerHandler for KnowledgeServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "search_knowledge" => {
                let query = string_arg(&args, "query")?.to_lowercase();
                let hits: Vec<&str> = DOCUMENTS
                    .iter()
                    .filter(|(id, body)| id.contains(&query) || body.to_lowercase().contains(&query))
                    .map(|(id, _)| *id)
                    .collect();
                text(json!({"query": query, "documents": hits}).to_string())
            }
            "get_document" => {
                let id = string_arg(&args, "id")?;
                match DOCUMENTS.iter().find(|(doc, _)| *doc == id) {
                    Some((_, body)) => text(*body),
                    None => CallToolResult::error(vec![ContentBlock::text(format!("no document {id}"))]),
                }
            }
            "list_tasks" => text(json!(*self.tasks.lock().unwrap_or_else(|p| p.into_inner())).to_string()),
            "create_task" => {
                let title = string_arg(&args, "title")?.to_owned();
                let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
                if tasks.contains(&title) {
                    CallToolResult::error(vec![ContentBlock::text(format!("a task named {title:?} exists"))])
                } else {
                    tasks.push(title.clone());
                    text(format!("created {title:?}"))
                }
            }
            "summarize_document" => {
                let id = string_arg(&args, "id")?;
                let body = DOCUMENTS.iter().find(|(doc, _)| *doc == id).map_or("", |(_, body)| body);
                // A real server would call the model here; it reports what the call used.
                let input = 400 + body.len() as u64 * 3;
                usage::record(Usage::new(SUMMARY_MODEL).with_tokens(input, 120));
                text(format!("Summary of {id}: {}", body.split('.').next().unwrap_or_default()))
            }
            other => return Err(McpError::invalid_params(format!("unknown tool {other}"), None)),
        };
        Ok(result.into())
    }
}
