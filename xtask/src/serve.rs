//! `cargo xtask serve`: the prediction API on a local port.

use std::time::Duration;

use anyhow::{Context, bail};
use stockcast::api::{ApiConfig, ApiState, app};
use stockcast::registry::Registry;

use crate::flags;

impl flags::Serve {
    pub fn run(self) -> anyhow::Result<()> {
        stockcast::logging::init_human();
        let store = self.store.open()?;
        let registry = Registry::new(store);
        let runtime =
            tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
        // An empty store would answer every symbol with "unknown symbol":
        // say what is wrong instead of serving nothing.
        if runtime.block_on(registry.production_models())?.is_empty() {
            bail!(
                "the store {} has no production models to serve: run `cargo xtask local` first (or give --root the store that has them)",
                registry.store().describe()
            );
        }
        let state = ApiState::new(
            registry,
            ApiConfig {
                revalidate_after: Duration::from_secs_f64(self.revalidate_secs),
                api_key: self.api_key.clone(),
                ..ApiConfig::default()
            },
        );
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
                .await
                .with_context(|| format!("cannot listen on 127.0.0.1:{}; is it in use? pick another with --port", self.port))?;
            eprintln!(
                "serving the prediction API on http://127.0.0.1:{} from {} (try: curl -X POST localhost:{}/predict -H 'content-type: application/json' -d '{{\"symbol\":\"AAPL\",\"model_type\":\"arima\",\"days_ahead\":5}}')",
                self.port, self.store.root, self.port
            );
            axum::serve(listener, app(state)).await.context("the server stopped")
        })
    }
}
