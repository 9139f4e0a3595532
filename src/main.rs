use anyhow::Context;
use clap::Parser;
use recorderd::cli::args::{Cli, Command, ConfigCommand, ServeArgs};
use recorderd::cli::{config, generate, health, jobs, nodes, recordings, schedules};
use recorderd::config::Settings;
use recorderd::startup::Application;
use recorderd::{db, signals, telemetry};

/// The commands that are not the server print their error and exit 1.
fn exit_code(result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn main() -> anyhow::Result<()> {
    recorderd::memory::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
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
        Some(Command::Health(args)) => exit_code(health::check(&args).await),
        Some(Command::Jobs {
            client: args,
            command,
        }) => exit_code(jobs::run(&args, &command).await),
        Some(Command::Recordings {
            client: args,
            command,
        }) => exit_code(recordings::run(&args, &command).await),
        Some(Command::Schedules {
            client: args,
            command,
        }) => exit_code(schedules::run(&args, &command).await),
        Some(Command::Nodes {
            client: args,
            command,
        }) => exit_code(nodes::run(&args, command.as_ref()).await),
        Some(Command::Config {
            command: ConfigCommand::Check { file, output },
        }) => exit_code(config::check(&file, output)),
        Some(Command::Completions { shell }) => exit_code(generate::completions(shell)),
        Some(Command::Man { dir }) => exit_code(generate::man(dir.as_deref())),
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
