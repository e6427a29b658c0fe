#![allow(dead_code)]
pub use reqwest::Client;
pub use weir_server::serve::AppState;
