//! Output: a JSON document, a markdown table and a PNG plot of cost and delay against load.

use std::path::Path;

use serde::Serialize;

use crate::run::StepResult;

/// Where the figures were measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn here() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_default(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub machine: Machine,
    pub steps: Vec<StepResult>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
}

/// One row per step.
pub fn markdown(steps: &[StepResult]) -> String {
    let mut s = String::from(
        "| visits×participants | subs/publisher | fwd pkt/s | loss % | audio delay p50/p99 ms | video delay p50/p99 ms | server cores | CPU µs/pkt | media-thread µs/pkt | pkt/s per core | server RSS MiB | loadgen cores |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in steps {
        let ms = |us: u32| us as f64 / 1000.0;
        s.push_str(&format!(
            "| {}×{} | {} | {:.0} | {:.3} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {} | {} | {} | {} | {:.2} |\n",
            r.visits,
            r.participants_per_visit,
            r.subscribers_per_publisher,
            r.forwarded_packets_per_s,
            r.loss * 100.0,
            ms(r.audio_delay.p50_us),
            ms(r.audio_delay.p99_us),
            ms(r.video_delay.p50_us),
            ms(r.video_delay.p99_us),
            opt(r.server_cores, 2),
            opt(r.cpu_us_per_packet, 2),
            opt(r.media_thread_us_per_packet, 2),
            opt(r.packets_per_core_s, 0),
            opt(r.server_rss_kib.map(|k| k as f64 / 1024.0), 1),
            r.loadgen_cores,
        ));
    }
    s
}

pub fn write_json(path: &Path, report: &Report) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(report).expect("the report always serializes");
    std::fs::write(path, text + "\n")
}
