//! What `keygate serve` reports about itself: the log (text, coloured only on a terminal, or
//! JSON lines; filtered by `RUST_LOG`) and, when `otel_endpoint` is set, OpenTelemetry traces
//! sent over OTLP/HTTP (protobuf) to `<otel_endpoint>/v1/traces`, batched on a thread of their
//! own. Trace spans have the target `keygate::otel` and only the exporter's layer wants them:
//! without an endpoint their call sites are disabled and the request path pays nothing.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

use crate::CliError;
use crate::config::LogFormat;

/// Sends what is batched when dropped... only when told: [`Telemetry::shutdown`].
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still batched and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            tracing::warn!(error = %err, "traces still batched could not be sent");
        }
    }
}

/// Installs the log and, with `otel_endpoint`, the trace exporter.
pub fn init(format: LogFormat, otel_endpoint: Option<&str>) -> Result<Telemetry, CliError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colour only for a person at a terminal: a file or a log collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let log = match format {
        LogFormat::Text => fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    // The log never shows the trace spans: they are the exporter's.
    let log = log.with_filter(
        filter.add_directive(
            "keygate::otel=off"
                .parse()
                .map_err(|_| CliError::Invalid("bad log filter".to_owned()))?,
        ),
    );
    let Some(endpoint) = otel_endpoint else {
        let _ = tracing_subscriber::registry().with(log).try_init();
        return Ok(Telemetry { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| CliError::Invalid(format!("otel_endpoint: {e}")))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("keygate")
                .build(),
        )
        .build();
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("keygate"))
        .with_filter(Targets::new().with_target("keygate::otel", tracing::Level::TRACE));
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(traces)
        .try_init();
    Ok(Telemetry {
        provider: Some(provider),
    })
}
