//! `bedside-recorder`: consented, encrypted visit recorder. Not built yet: see the project's issues.

fn main() {
    eprintln!("bedside-recorder is not available in this build yet");
    std::process::exit(2);
}
