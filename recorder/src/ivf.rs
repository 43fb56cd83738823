//! IVF output of VP8 video: the encoded frames as received, each with its presentation time.
//!
//! File header (32 bytes, little-endian): `DKIF`, version 0, header length 32, fourcc `VP80`,
//! width, height, timebase rate 90000 and scale 1 (ticks of 1/90000 s, the RTP video clock),
//! frame count, unused. Each frame: size (u32), pts (u64), then the frame. The frame count is
//! 0 while recording; `export` fixes it (see [`crate::fixup`]).

/// Length of the IVF file header.
pub const IVF_HEADER_LEN: usize = 32;
/// Length of each frame header.
pub const IVF_FRAME_HEADER_LEN: usize = 12;
/// Ticks per second of the timebase (the RTP clock of video).
pub const IVF_TIMEBASE: u32 = 90_000;
/// Byte offset of the frame count in the file header.
pub const IVF_FRAME_COUNT_OFFSET: usize = 24;

/// The IVF file header for VP8 at `width` × `height`, timebase 1/90000, with `frames` frames.
pub fn ivf_header(width: u16, height: u16, frames: u32) -> [u8; IVF_HEADER_LEN] {
    let mut h = [0u8; IVF_HEADER_LEN];
    h[0..4].copy_from_slice(b"DKIF");
    h[4..6].copy_from_slice(&0u16.to_le_bytes());
    h[6..8].copy_from_slice(&(IVF_HEADER_LEN as u16).to_le_bytes());
    h[8..12].copy_from_slice(b"VP80");
    h[12..14].copy_from_slice(&width.to_le_bytes());
    h[14..16].copy_from_slice(&height.to_le_bytes());
    h[16..20].copy_from_slice(&IVF_TIMEBASE.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[24..28].copy_from_slice(&frames.to_le_bytes());
    h
}

/// The 12-byte header before each frame.
pub fn ivf_frame_header(size: u32, pts: u64) -> [u8; IVF_FRAME_HEADER_LEN] {
    let mut h = [0u8; IVF_FRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&size.to_le_bytes());
    h[4..12].copy_from_slice(&pts.to_le_bytes());
    h
}

/// Whether `frame` (a whole depacketized VP8 frame) is a keyframe, and if so its width and
/// height (RFC 6386 section 9.1: 3-byte frame tag with the inverse key-frame bit, start code
/// `9d 01 2a`, then 14-bit width and height). `None` for inter frames and anything malformed.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    (width > 0 && height > 0).then_some((width, height))
}

/// Decides which video frames are worth keeping: nothing before the first keyframe, and after a
/// loss (a frame that is not contiguous with the previous one) nothing until the next keyframe,
/// since inter frames that refer to lost data decode as garbage. The session shell keeps one per
/// video mid to know when to ask for a keyframe; the capture keeps one per stream to write.
#[derive(Debug, Clone)]
pub struct KeyframeGate {
    waiting: bool,
}

impl Default for KeyframeGate {
    fn default() -> Self {
        KeyframeGate { waiting: true }
    }
}

impl KeyframeGate {
    /// Whether to keep this frame.
    pub fn admit(&mut self, contiguous: bool, keyframe: bool) -> bool {
        if keyframe {
            self.waiting = false;
        } else if !contiguous {
            self.waiting = true;
        }
        !self.waiting
    }

    /// Whether a keyframe is needed before anything more can be kept.
    pub fn waiting(&self) -> bool {
        self.waiting
    }
}

#[cfg(test)]
pub(crate) fn test_keyframe(width: u16, height: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(10)];
    f[0] = 0x10; // key frame (bit 0 clear), version 0, show_frame
    f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
    f[6..8].copy_from_slice(&width.to_le_bytes());
    f[8..10].copy_from_slice(&height.to_le_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_dimensions() {
        assert_eq!(
            vp8_keyframe_size(&test_keyframe(640, 480, 100)),
            Some((640, 480))
        );
        // The top two bits are the scaling mode, not part of the size.
        let mut f = test_keyframe(320, 240, 10);
        f[7] |= 0xc0;
        assert_eq!(vp8_keyframe_size(&f), Some((320, 240)));
        let mut inter = test_keyframe(640, 480, 100);
        inter[0] |= 1;
        assert_eq!(vp8_keyframe_size(&inter), None);
        assert_eq!(vp8_keyframe_size(&[0, 0, 0]), None);
        assert_eq!(vp8_keyframe_size(&[]), None);
        let mut bad_start = test_keyframe(640, 480, 100);
        bad_start[4] = 0;
        assert_eq!(vp8_keyframe_size(&bad_start), None);
    }

    #[test]
    fn headers() {
        let h = ivf_header(640, 480, 7);
        assert_eq!(&h[0..4], b"DKIF");
        assert_eq!(&h[8..12], b"VP80");
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 32);
        assert_eq!(u16::from_le_bytes([h[12], h[13]]), 640);
        assert_eq!(u16::from_le_bytes([h[14], h[15]]), 480);
        assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 90_000);
        assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 7);
        let f = ivf_frame_header(4000, 3000);
        assert_eq!(u32::from_le_bytes(f[0..4].try_into().unwrap()), 4000);
        assert_eq!(u64::from_le_bytes(f[4..12].try_into().unwrap()), 3000);
    }

    #[test]
    fn gate_waits_for_a_keyframe_and_again_after_loss() {
        let mut g = KeyframeGate::default();
        assert!(!g.admit(true, false));
        assert!(g.waiting());
        assert!(g.admit(true, true));
        assert!(g.admit(true, false));
        assert!(!g.admit(false, false), "a frame after a loss is dropped");
        assert!(
            !g.admit(true, false),
            "and so is everything until a keyframe"
        );
        assert!(g.admit(false, true));
        assert!(!g.waiting());
    }
}
