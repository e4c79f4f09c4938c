//! Client type normalisation: the raw MCP client name → one of a fixed set of client types.
//!
//! ```
//! use archon_mcp_exporter::ClientType;
//!
//! assert_eq!(ClientType::from_client_name("claude-code"), ClientType::Claude);
//! assert_eq!(ClientType::from_client_name("Visual Studio Code"), ClientType::VsCode);
//! assert_eq!(ClientType::from_client_name("my-bot").as_str(), "Unknown");
//! ```

/// The normalised client of a session (`archon_mcp_sessions.client_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientType {
    /// Claude Desktop, Claude Code, claude.ai.
    Claude,
    /// Cursor.
    Cursor,
    /// Windsurf (Codeium).
    Windsurf,
    /// Cline and Roo Code.
    Cline,
    /// Kiro.
    KiRo,
    /// Augment Code.
    Augment,
    /// Gemini CLI / Code Assist.
    Gemini,
    /// VS Code and GitHub Copilot.
    VsCode,
    /// Zed.
    Zed,
    /// OpenAI Codex.
    Codex,
    /// Block's Goose.
    Goose,
    /// Continue.
    Continue,
    /// ChatGPT.
    ChatGpt,
    /// JetBrains AI Assistant / Junie.
    JetBrains,
    /// Anything else, or no name.
    Unknown,
}

/// Substrings of the lower-cased client name, most specific first.
const PATTERNS: &[(&str, ClientType)] = &[
    ("claude", ClientType::Claude),
    ("cursor", ClientType::Cursor),
    ("windsurf", ClientType::Windsurf),
    ("codeium", ClientType::Windsurf),
    ("cline", ClientType::Cline),
    ("roo-code", ClientType::Cline),
    ("roo code", ClientType::Cline),
    ("kiro", ClientType::KiRo),
    ("augment", ClientType::Augment),
    ("gemini", ClientType::Gemini),
    ("copilot", ClientType::VsCode),
    ("visual studio code", ClientType::VsCode),
    ("vscode", ClientType::VsCode),
    ("vs code", ClientType::VsCode),
    ("codex", ClientType::Codex),
    ("goose", ClientType::Goose),
    ("continue", ClientType::Continue),
    ("chatgpt", ClientType::ChatGpt),
    ("openai", ClientType::ChatGpt),
    ("jetbrains", ClientType::JetBrains),
    ("junie", ClientType::JetBrains),
];

impl ClientType {
    /// Normalises a raw client name (case-insensitive substring match).
    pub fn from_client_name(name: &str) -> Self {
        let name = name.to_lowercase();
        if let Some((_, client)) = PATTERNS.iter().find(|(pattern, _)| name.contains(pattern)) {
            return *client;
        }
        // "zed" is too short for a substring ("optimized-client"): whole words only.
        if name.split(|c: char| !c.is_alphanumeric()).any(|word| word == "zed") {
            return ClientType::Zed;
        }
        ClientType::Unknown
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Claude => "Claude",
            ClientType::Cursor => "Cursor",
            ClientType::Windsurf => "Windsurf",
            ClientType::Cline => "Cline",
            ClientType::KiRo => "KiRo",
            ClientType::Augment => "Augment",
            ClientType::Gemini => "Gemini",
            ClientType::VsCode => "VS Code",
            ClientType::Zed => "Zed",
            ClientType::Codex => "Codex",
            ClientType::Goose => "Goose",
            ClientType::Continue => "Continue",
            ClientType::ChatGpt => "ChatGPT",
            ClientType::JetBrains => "JetBrains",
            ClientType::Unknown => "Unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClientType::{self, *};

    #[test]
    fn known_clients_are_recognised() {
        for (name, expected) in [
            ("claude-ai", Claude),
            ("Claude Code", Claude),
            ("cursor-vscode", Cursor), // Cursor reports itself as a VS Code fork
            ("Windsurf", Windsurf),
            ("Cline", Cline),
            ("Roo Code", Cline),
            ("Kiro", KiRo),
            ("augment-vscode", Augment),
            ("gemini-cli-mcp-client", Gemini),
            ("Visual Studio Code", VsCode),
            ("GitHub Copilot", VsCode),
            ("Zed", Zed),
            ("codex-mcp-client", Codex),
            ("goose", Goose),
            ("continue-client", Continue),
            ("openai-mcp", ChatGpt),
            ("ChatGPT", ChatGpt),
            ("JetBrains AI Assistant", JetBrains),
        ] {
            assert_eq!(ClientType::from_client_name(name), expected, "{name}");
        }
    }

    #[test]
    fn anything_else_is_unknown() {
        assert_eq!(ClientType::from_client_name(""), Unknown);
        assert_eq!(ClientType::from_client_name("rmcp"), Unknown);
        assert_eq!(ClientType::from_client_name("optimized-client"), Unknown);
        assert_eq!(ClientType::from_client_name("zed-industries"), Zed);
        assert_eq!(Unknown.as_str(), "Unknown");
        assert_eq!(VsCode.as_str(), "VS Code");
    }
}
