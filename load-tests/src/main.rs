//! `bedside-load` command line: flags → steps → JSON, markdown, plot.

fn main() -> std::process::ExitCode {
    bedside_load::cli::main()
}
