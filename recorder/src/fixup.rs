//! Header fix-ups applied by `export` to decrypted media files.
//!
//! The recorder streams WAV and IVF through an encrypting writer that cannot seek back, so the
//! sizes in their headers are placeholders (WAV: RIFF size 36 and data size 0; IVF: frame
//! count 0). After decryption the real length is known: these functions rewrite the sizes from
//! it. They also cut off a torn tail (an odd byte of a sample, a partial IVF frame) left by a
//! recorder killed mid-write, so every exported file is well-formed. Both are idempotent.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use crate::ivf::{IVF_FRAME_COUNT_OFFSET, IVF_FRAME_HEADER_LEN};

/// What a fix-up changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixup {
    /// WAV: the data chunk now declares this many bytes.
    Wav { data_bytes: u32 },
    /// IVF: the header now declares this many frames.
    Ivf { frames: u32 },
    /// Not a file this fix-up understands; left as it was.
    Unrecognised,
}

fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> std::io::Result<bool> {
    file.seek(SeekFrom::Start(offset))?;
    match file.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn write_at(file: &mut File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// Sets the RIFF size and the `data` chunk size of a WAV file from its length. The `data`
/// chunk is found by walking the chunks after `WAVE`; it runs to the end of the file (as the
/// recorder writes it). A trailing odd byte is cut off (16-bit samples).
pub fn fix_wav(file: &mut File) -> std::io::Result<Fixup> {
    let mut len = file.metadata()?.len();
    let mut riff = [0u8; 12];
    if !read_at(file, 0, &mut riff)? || &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Ok(Fixup::Unrecognised);
    }
    let mut offset = 12u64;
    let data_start = loop {
        let mut chunk = [0u8; 8];
        if !read_at(file, offset, &mut chunk)? {
            return Ok(Fixup::Unrecognised);
        }
        if &chunk[0..4] == b"data" {
            break offset + 8;
        }
        let size = u64::from(u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]));
        offset += 8 + size + (size & 1);
    };
    let mut data = len - data_start;
    if data % 2 == 1 {
        len -= 1;
        data -= 1;
        file.set_len(len)?;
    }
    let data_bytes = u32::try_from(data).unwrap_or(u32::MAX - 1);
    let riff_size = u32::try_from(len - 8).unwrap_or(u32::MAX);
    write_at(file, data_start - 4, &data_bytes.to_le_bytes())?;
    write_at(file, 4, &riff_size.to_le_bytes())?;
    file.sync_all()?;
    Ok(Fixup::Wav { data_bytes })
}

/// Counts the complete frames of an IVF file and writes the count into its header; a partial
/// frame at the end is cut off.
pub fn fix_ivf(file: &mut File) -> std::io::Result<Fixup> {
    let len = file.metadata()?.len();
    let mut header = [0u8; 32];
    if !read_at(file, 0, &mut header)? || &header[0..4] != b"DKIF" {
        return Ok(Fixup::Unrecognised);
    }
    let header_len = u64::from(u16::from_le_bytes([header[6], header[7]]));
    if header_len < 32 {
        return Ok(Fixup::Unrecognised);
    }
    let mut offset = header_len;
    let mut frames = 0u32;
    loop {
        let mut fh = [0u8; IVF_FRAME_HEADER_LEN];
        if !read_at(file, offset, &mut fh)? {
            break;
        }
        let size = u64::from(u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]));
        let end = offset + IVF_FRAME_HEADER_LEN as u64 + size;
        if end > len {
            break;
        }
        offset = end;
        frames = frames.saturating_add(1);
    }
    if offset < len {
        file.set_len(offset.max(header_len))?;
    }
    write_at(file, IVF_FRAME_COUNT_OFFSET as u64, &frames.to_le_bytes())?;
    file.sync_all()?;
    Ok(Fixup::Ivf { frames })
}

/// Applies the fix-up that matches the exported file's name (`.wav`, `.ivf`); other files are
/// left alone.
pub fn fix_exported(name: &str, file: &mut File) -> std::io::Result<Fixup> {
    if name.ends_with(".wav") {
        fix_wav(file)
    } else if name.ends_with(".ivf") {
        fix_ivf(file)
    } else {
        Ok(Fixup::Unrecognised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivf::{ivf_frame_header, ivf_header};
    use crate::wav::{push_pcm, wav_header};

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (dir, f)
    }

    fn contents(f: &mut File) -> Vec<u8> {
        let mut v = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn wav_sizes_from_length_and_odd_tail_cut() {
        let mut bytes = wav_header();
        push_pcm(&[1, 2, 3, 4, 5], &mut bytes);
        bytes.push(9); // torn half sample
        let (_d, mut f) = file_with(&bytes);
        assert_eq!(fix_wav(&mut f).unwrap(), Fixup::Wav { data_bytes: 10 });
        let fixed = contents(&mut f);
        assert_eq!(fixed.len(), 54);
        let reader = hound::WavReader::new(std::io::Cursor::new(&fixed)).unwrap();
        let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
        assert_eq!(samples, [1, 2, 3, 4, 5]);
        assert_eq!(u32::from_le_bytes(fixed[4..8].try_into().unwrap()), 46);
        // Idempotent.
        assert_eq!(fix_wav(&mut f).unwrap(), Fixup::Wav { data_bytes: 10 });
        assert_eq!(contents(&mut f), fixed);
    }

    #[test]
    fn ivf_frame_count_and_torn_frame_cut() {
        let mut bytes = ivf_header(64, 48, 0).to_vec();
        for (i, n) in [10usize, 0, 300].into_iter().enumerate() {
            bytes.extend_from_slice(&ivf_frame_header(n as u32, i as u64 * 3000));
            bytes.extend(std::iter::repeat_n(i as u8, n));
        }
        let complete = bytes.len();
        bytes.extend_from_slice(&ivf_frame_header(500, 9000));
        bytes.extend_from_slice(&[1; 20]);
        let (_d, mut f) = file_with(&bytes);
        assert_eq!(fix_ivf(&mut f).unwrap(), Fixup::Ivf { frames: 3 });
        let fixed = contents(&mut f);
        assert_eq!(fixed.len(), complete);
        assert_eq!(u32::from_le_bytes(fixed[24..28].try_into().unwrap()), 3);
        assert_eq!(fix_ivf(&mut f).unwrap(), Fixup::Ivf { frames: 3 });
    }

    #[test]
    fn unrecognised_files_are_left_alone() {
        for bytes in [
            &b""[..],
            b"RIFF",
            b"RIFF\0\0\0\0WAVEjunk",
            b"DKIF",
            b"hello world",
        ] {
            let (_d, mut f) = file_with(bytes);
            assert_eq!(fix_wav(&mut f).unwrap(), Fixup::Unrecognised);
            assert_eq!(fix_ivf(&mut f).unwrap(), Fixup::Unrecognised);
            assert_eq!(contents(&mut f), bytes);
        }
        let (_d, mut f) = file_with(b"{}");
        assert_eq!(
            fix_exported("meta.json", &mut f).unwrap(),
            Fixup::Unrecognised
        );
    }
}
