//! `bedside-turn`: TURN/STUN relay. Not built yet: see the project's issues.

fn main() {
    eprintln!("bedside-turn is not available in this build yet");
    std::process::exit(2);
}
