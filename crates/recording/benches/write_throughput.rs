//! Encrypted versus plain write throughput: 16 MiB written in 4 KiB writes (about an RTP
//! frame's worth at a time), 64 KiB chunks, one `sync_data` at the end in both cases.

use std::io::Write;

use bedside_recording::{DataKey, EncryptedWriter, RecordingId, WriterOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const TOTAL: usize = 16 * 1024 * 1024;
const WRITE: usize = 4096;

fn write_throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..WRITE).map(|i| (i * 31) as u8).collect();
    let mut group = c.benchmark_group("recording_write_16MiB");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(10);
    let mut n = 0u64;
    group.bench_function("plain", |b| {
        b.iter(|| {
            n += 1;
            let path = dir.path().join(format!("plain-{n}"));
            let mut f =
                std::io::BufWriter::with_capacity(64 * 1024, std::fs::File::create(&path).unwrap());
            for _ in 0..TOTAL / WRITE {
                f.write_all(&data).unwrap();
            }
            f.into_inner().unwrap().sync_data().unwrap();
            std::fs::remove_file(&path).unwrap();
        })
    });
    group.bench_function("encrypted", |b| {
        b.iter(|| {
            n += 1;
            let key = DataKey::generate(RecordingId::generate());
            let name = format!("enc-{n}");
            let options = WriterOptions {
                chunk_size: 64 * 1024,
                sync_every: 0,
            };
            let mut w = EncryptedWriter::create_with(dir.path(), &name, &key, options).unwrap();
            for _ in 0..TOTAL / WRITE {
                w.write_all(&data).unwrap();
            }
            w.finish().unwrap();
            std::fs::remove_file(dir.path().join(format!("{name}.enc"))).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, write_throughput);
criterion_main!(benches);
