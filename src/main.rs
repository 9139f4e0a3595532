use anyhow::Context;
use clap::Parser;
use recorderd::cli::args::{Cli, Command, ServeArgs};
use recorderd::cli::{client, health};
use recorderd::config::Settings;
use recorderd::startup::Application;
use recorderd::{db, signals, telemetry};

/// The client subcommands print the server's error and exit 1.
fn exit_code(result: anyhow::Result<std::process::ExitCode>) -> anyhow::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Before any HTTP client is built (webhooks, the client subcommands).
    recorderd::tls::install_crypto_provider();
    match cli.command {
        Some(Command::Migrate(args)) => {
            telemetry::init(args.log_format);
            let url = args.resolved_database_url()?;
            let connection = db::connect(&url, args.database_wait()).await?;
            db::migrate(&connection).await?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::Health(args)) => health::check(&args).await,
        Some(Command::Jobs {
            client: args,
            command,
        }) => {
            return exit_code(client::jobs(&args, &command).await);
        }
        Some(Command::Recordings {
            client: args,
            command,
        }) => {
            return exit_code(client::recordings(&args, &command).await);
        }
        Some(Command::Nodes {
            client: args,
            command,
        }) => {
            return exit_code(recorderd::cli::nodes::nodes(&args, command.as_ref()).await);
        }
        Some(Command::Openapi) => {
            println!("{}", recorderd::http::openapi().to_pretty_json()?);
            Ok(())
        }
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(args.database.log_format);
    let settings = Settings::from_args(&args)?;
    let stop = signals::shutdown_signal().context("installing signal handlers")?;
    Application::build(settings)
        .await?
        .run_until_stopped(stop)
        .await
}
