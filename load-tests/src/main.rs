//! `bedside-load`: synthetic load for a running bedside. Not built yet: see the project's issues.

fn main() {
    eprintln!("bedside-load is not available in this build yet");
    std::process::exit(2);
}
