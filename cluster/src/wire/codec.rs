//! Length-prefixed postcard framing: `u32 LE length ++ postcard(frame)`.
//!
//! [`FrameDecoder`] is a push parser: feed it whatever chunks the stream delivers (a frame may
//! span chunks; a chunk may hold many frames, as the writers coalesce them) and pull out whole
//! frames. It checks a frame's claimed length against the cap *before* buffering it, so a
//! hostile length cannot make it allocate.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The default cap on one frame's size: 8 MiB.
pub const DEFAULT_MAX_FRAME: usize = 8 * 1024 * 1024;

const PREFIX: usize = 4;

/// Why a stream's bytes were rejected. Any of these closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A length prefix larger than the cap.
    #[error(
        "frame of {len} bytes exceeds the {max}-byte cap; the peer is broken or hostile (raise max_frame_size if you really send messages this large)"
    )]
    TooLarge {
        /// The claimed length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The frame's bytes are not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes of the partial frame received.
        have: usize,
        /// Bytes the frame needed.
        need: usize,
    },
    /// A frame could not be encoded (e.g. over the cap).
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

/// Appends one frame (`u32 LE length ++ postcard`) to `out`.
pub fn encode_frame_into<T: Serialize>(
    frame: &T,
    out: &mut Vec<u8>,
    max: usize,
) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX]);
    if let Err(e) = postcard::to_io(frame, &mut *out) {
        out.truncate(start);
        return Err(WireError::Encode(e.to_string()));
    }
    let len = out.len() - start - PREFIX;
    if len > max {
        out.truncate(start);
        return Err(WireError::TooLarge { len, max });
    }
    // `len <= max <= u32::MAX` is not guaranteed for a huge `max`; check explicitly.
    let Ok(len32) = u32::try_from(len) else {
        out.truncate(start);
        return Err(WireError::TooLarge {
            len,
            max: u32::MAX as usize,
        });
    };
    out[start..start + PREFIX].copy_from_slice(&len32.to_le_bytes());
    Ok(())
}

/// One frame as a fresh buffer.
pub fn encode_frame<T: Serialize>(frame: &T, max: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    encode_frame_into(frame, &mut out, max)?;
    Ok(out)
}

/// A push parser of frames of type `T`.
///
/// ```
/// use understudy_cluster::wire::{encode_frame, FrameDecoder, Signal, DEFAULT_MAX_FRAME};
/// let a = encode_frame(&Signal::Monitor { watcher: 1, target: 2 }, DEFAULT_MAX_FRAME)?;
/// let b = encode_frame(&Signal::Demonitor { watcher: 1, target: 2 }, DEFAULT_MAX_FRAME)?;
/// let mut bytes = a;
/// bytes.extend(b);
/// let mut dec = FrameDecoder::<Signal>::new(DEFAULT_MAX_FRAME);
/// // Chunks may split frames anywhere.
/// dec.push(&bytes[..3]);
/// assert!(dec.next_frame()?.is_none());
/// dec.push(&bytes[3..]);
/// assert_eq!(dec.next_frame()?, Some(Signal::Monitor { watcher: 1, target: 2 }));
/// assert_eq!(dec.next_frame()?, Some(Signal::Demonitor { watcher: 1, target: 2 }));
/// assert!(dec.next_frame()?.is_none());
/// # Ok::<(), understudy_cluster::wire::WireError>(())
/// ```
pub struct FrameDecoder<T> {
    raw: RawFrames,
    _frame: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> FrameDecoder<T> {
    /// A decoder that rejects frames over `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            raw: RawFrames::new(max),
            _frame: std::marker::PhantomData,
        }
    }

    /// Appends bytes received from the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.raw.push(chunk);
    }

    /// The next whole frame, `None` if more bytes are needed, or an error (after which the
    /// stream must be abandoned).
    pub fn next_frame(&mut self) -> Result<Option<T>, WireError> {
        self.raw.next_frame()
    }

    /// Call when the stream has ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), WireError> {
        self.raw.finish()
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.raw.buffered()
    }
}

/// The untyped part of [`FrameDecoder`]: a byte buffer that hands out whole frames, decoding
/// each as whatever type the caller asks for (a stream whose frames change type, such as a
/// request followed by its answer, keeps one buffer).
///
/// Work is linear in the bytes pushed: consumed bytes are reclaimed only once they are at
/// least half the buffer, and a frame is decoded once, when it is whole.
pub(crate) struct RawFrames {
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
    max: usize,
}

impl RawFrames {
    pub(crate) fn new(max: usize) -> Self {
        RawFrames {
            buf: Vec::new(),
            pos: 0,
            max,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos > self.buf.len() / 2) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    pub(crate) fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        let avail = &self.buf[self.pos..];
        let Some((prefix, rest)) = avail.split_first_chunk::<PREFIX>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if len > self.max {
            return Err(WireError::TooLarge { len, max: self.max });
        }
        if rest.len() < len {
            // Grow once to the whole frame instead of doubling through it.
            self.buf.reserve(len - rest.len());
            return Ok(None);
        }
        let body = &rest[..len];
        let frame = match postcard::take_from_bytes::<T>(body) {
            Ok((frame, [])) => frame,
            Ok((_, trailing)) => {
                return Err(WireError::Malformed(format!(
                    "{} trailing bytes inside a frame",
                    trailing.len()
                )));
            }
            Err(e) => return Err(WireError::Malformed(e.to_string())),
        };
        self.pos += PREFIX + len;
        Ok(Some(frame))
    }

    pub(crate) fn finish(&self) -> Result<(), WireError> {
        let have = self.buffered();
        if have == 0 {
            return Ok(());
        }
        let need = self.buf[self.pos..]
            .split_first_chunk::<PREFIX>()
            .map(|(p, _)| PREFIX + u32::from_le_bytes(*p) as usize)
            .unwrap_or(PREFIX);
        Err(WireError::Truncated { have, need })
    }

    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }
}
