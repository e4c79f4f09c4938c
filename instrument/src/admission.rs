//! [`Admission`]: whether a request may run, decided before its handler. A session belongs to
//! the principal that opened it, and a tool call spends the budgets that cover it.

use std::sync::Arc;

use opentelemetry::KeyValue;
use rmcp::ErrorData as McpError;

use crate::attributes as attr;
use crate::budget::{BudgetGate, Verdict};
use crate::connection::Connection;
use crate::origin::Origin;
use crate::runtime::Shared;
use crate::session::ActiveSession;
use crate::user::UserInfo;

/// The JSON-RPC code of a call refused for its budget (an implementation-defined server error).
const BUDGET_EXCEEDED_CODE: i32 = -32050;

/// The error of a request refused because its principal is not its session's.
const FOREIGN_PRINCIPAL: &str =
    "this request's credentials are not those its session was opened with: reconnect with your own credentials";

/// What was decided about a request before its handler runs.
pub(crate) struct Admission {
    /// The client, user and protocol attributes the request is recorded with: its own user's,
    /// or none when its principal is not its session's — never billed to the session's user.
    pub(crate) identity: Arc<[KeyValue]>,
    /// With budgets enforced, on `tools/call`: the user its spend counts for (none: anonymous).
    pub(crate) budgeted: Option<Option<Arc<UserInfo>>>,
    /// Refused before the handler runs (its principal is not its session's; a budget is used
    /// up): the error, and its `error.type` when not the JSON-RPC code.
    pub(crate) refusal: Option<(McpError, Option<&'static str>)>,
}

impl Admission {
    /// Decides on a request of `session` from `origin`, whose own identity is `identity`;
    /// `tool` is the tool a `tools/call` names.
    pub(crate) fn decide(
        shared: &Shared,
        connection: &Connection,
        origin: &Origin<'_>,
        session: Option<&ActiveSession>,
        identity: Arc<[KeyValue]>,
        tool: Option<&str>,
    ) -> Self {
        // A request with another principal (or none, or a credential that failed) is anonymous
        // in the session, or refused.
        let foreign = session.is_some_and(|s| s.principal.as_deref() != origin.principal());
        let identity = if foreign {
            connection.identity(origin.client(), &None, origin.protocol(), shared.settings.hash_emails)
        } else {
            identity
        };
        let budgets = shared.settings.budgets.as_ref();
        let budgeted = tool.and(budgets).map(|_| if foreign { None } else { origin.user.clone() });
        let refusal = if foreign && shared.settings.refuse_foreign_principals {
            Some((McpError::invalid_request(FOREIGN_PRINCIPAL, None), None))
        } else if let (Some(user), Some(gate), Some(tool)) = (&budgeted, budgets, tool) {
            budget_refusal(gate, user.as_deref(), tool, shared)
        } else {
            None
        };
        Self { identity, budgeted, refusal }
    }
}

/// The refusal of a tool call whose budget is used up; an unknown budget state lets it through
/// and is counted.
fn budget_refusal(
    gate: &BudgetGate,
    user: Option<&UserInfo>,
    tool: &str,
    shared: &Shared,
) -> Option<(McpError, Option<&'static str>)> {
    match gate.check(user, tool) {
        Verdict::Allowed => None,
        Verdict::Unknown => {
            shared.metrics().budget_unknown.add(1, &[]);
            None
        }
        Verdict::Refused(message) => Some((
            McpError::new(rmcp::model::ErrorCode(BUDGET_EXCEEDED_CODE), message, None),
            Some(attr::ERROR_TYPE_BUDGET_EXCEEDED),
        )),
    }
}
