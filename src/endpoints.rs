//! Qflow's documented identity-server facts that the sign-in redirect needs as well as the
//! client: kept apart from `qflow` so the browser build (which has no client) can use them.

pub const DEFAULT_IDENTITY_URL: &str = "https://identity.qflowhub.io";
pub const DEFAULT_SCOPE: &str = "qflowapi openid offline_access";
pub const AUTHORIZE_PATH: &str = "/core/connect/authorize";
