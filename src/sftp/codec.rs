//! SFTP version 3 messages (draft-ietf-secsh-filexfer-02, and the
//! extensions of OpenSSH's PROTOCOL), as bytes. Pure: no I/O. Every length
//! and count from the peer is checked against what is left of its packet;
//! handles and names stay bytes.

use bytes::{BufMut, Bytes, BytesMut};

pub const INIT: u8 = 1;
pub const VERSION: u8 = 2;
pub const OPEN: u8 = 3;
pub const CLOSE: u8 = 4;
pub const READ: u8 = 5;
pub const WRITE: u8 = 6;
pub const LSTAT: u8 = 7;
pub const FSTAT: u8 = 8;
pub const SETSTAT: u8 = 9;
pub const FSETSTAT: u8 = 10;
pub const OPENDIR: u8 = 11;
pub const READDIR: u8 = 12;
pub const MKDIR: u8 = 14;
pub const REALPATH: u8 = 16;
pub const STAT: u8 = 17;
pub const EXTENDED: u8 = 200;

pub const STATUS: u8 = 101;
pub const HANDLE: u8 = 102;
pub const DATA: u8 = 103;
pub const NAME: u8 = 104;
pub const ATTRS: u8 = 105;
pub const EXTENDED_REPLY: u8 = 201;

pub const OPEN_READ: u32 = 0x01;
pub const OPEN_WRITE: u32 = 0x02;
pub const OPEN_CREAT: u32 = 0x08;

const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// Status codes.
pub const FX_OK: u32 = 0;
pub const FX_EOF: u32 = 1;
pub const FX_NO_SUCH_FILE: u32 = 2;
pub const FX_PERMISSION_DENIED: u32 = 3;
pub const FX_FAILURE: u32 = 4;
pub const FX_BAD_MESSAGE: u32 = 5;
pub const FX_NO_CONNECTION: u32 = 6;
pub const FX_CONNECTION_LOST: u32 = 7;
pub const FX_OP_UNSUPPORTED: u32 = 8;

/// Bytes of a WRITE packet before its data: length, type, id, handle
/// (length and bytes), offset, data length.
pub fn write_header_len(handle: &[u8]) -> usize {
    4 + 1 + 4 + 4 + handle.len() + 8 + 4
}

/// File attributes; `None` where the peer did not send them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    /// (atime, mtime), seconds.
    pub times: Option<(u32, u32)>,
}

impl Attrs {
    pub fn is_dir(&self) -> bool {
        self.permissions
            .is_some_and(|p| p & libc::S_IFMT == libc::S_IFDIR)
    }

    pub fn is_regular(&self) -> bool {
        self.permissions
            .is_some_and(|p| p & libc::S_IFMT == libc::S_IFREG)
    }

    fn encode(&self, out: &mut BytesMut) {
        let mut flags = 0;
        if self.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if self.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if self.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if self.times.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        out.put_u32(flags);
        if let Some(size) = self.size {
            out.put_u64(size);
        }
        if let Some((uid, gid)) = self.uid_gid {
            out.put_u32(uid);
            out.put_u32(gid);
        }
        if let Some(permissions) = self.permissions {
            out.put_u32(permissions);
        }
        if let Some((atime, mtime)) = self.times {
            out.put_u32(atime);
            out.put_u32(mtime);
        }
    }

    fn decode(input: &mut Reader<'_>) -> Result<Attrs, String> {
        let flags = input.u32()?;
        let mut attrs = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            attrs.size = Some(input.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            attrs.uid_gid = Some((input.u32()?, input.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            attrs.permissions = Some(input.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            attrs.times = Some((input.u32()?, input.u32()?));
        }
        if flags & ATTR_EXTENDED != 0 {
            // Pairs of strings rscp has no use for; each must still be
            // there (the count cannot promise more than the packet holds).
            let count = input.u32()?;
            for _ in 0..count {
                input.string()?;
                input.string()?;
            }
        }
        Ok(attrs)
    }
}

/// A request rscp sends.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    Open {
        path: &'a [u8],
        flags: u32,
        attrs: &'a Attrs,
    },
    Close {
        handle: &'a [u8],
    },
    Read {
        handle: &'a [u8],
        offset: u64,
        len: u32,
    },
    Lstat {
        path: &'a [u8],
    },
    Stat {
        path: &'a [u8],
    },
    Fstat {
        handle: &'a [u8],
    },
    Setstat {
        path: &'a [u8],
        attrs: &'a Attrs,
    },
    Fsetstat {
        handle: &'a [u8],
        attrs: &'a Attrs,
    },
    Opendir {
        path: &'a [u8],
    },
    Readdir {
        handle: &'a [u8],
    },
    Mkdir {
        path: &'a [u8],
        attrs: &'a Attrs,
    },
    Realpath {
        path: &'a [u8],
    },
    /// An extension request: its name and its own fields.
    Extended {
        name: &'a str,
        fields: &'a [&'a [u8]],
    },
}

fn put_string(out: &mut BytesMut, bytes: &[u8]) {
    // Lengths rscp writes come from its own paths and buffers, which are
    // far below 4 GiB; a longer one would be cut, not overflow.
    out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.put_slice(bytes);
}

/// Appends the INIT packet (version 3).
pub fn encode_init(out: &mut BytesMut) {
    out.put_u32(5);
    out.put_u8(INIT);
    out.put_u32(3);
}

/// Appends `request` with `id` as one packet.
pub fn encode(id: u32, request: &Request<'_>, out: &mut BytesMut) {
    let start = out.len();
    out.put_u32(0);
    let kind = match request {
        Request::Open { .. } => OPEN,
        Request::Close { .. } => CLOSE,
        Request::Read { .. } => READ,
        Request::Lstat { .. } => LSTAT,
        Request::Stat { .. } => STAT,
        Request::Fstat { .. } => FSTAT,
        Request::Setstat { .. } => SETSTAT,
        Request::Fsetstat { .. } => FSETSTAT,
        Request::Opendir { .. } => OPENDIR,
        Request::Readdir { .. } => READDIR,
        Request::Mkdir { .. } => MKDIR,
        Request::Realpath { .. } => REALPATH,
        Request::Extended { .. } => EXTENDED,
    };
    out.put_u8(kind);
    out.put_u32(id);
    match request {
        Request::Open { path, flags, attrs } => {
            put_string(out, path);
            out.put_u32(*flags);
            attrs.encode(out);
        }
        Request::Read {
            handle,
            offset,
            len,
        } => {
            put_string(out, handle);
            out.put_u64(*offset);
            out.put_u32(*len);
        }
        Request::Close { handle } | Request::Fstat { handle } | Request::Readdir { handle } => {
            put_string(out, handle)
        }
        Request::Lstat { path }
        | Request::Stat { path }
        | Request::Opendir { path }
        | Request::Realpath { path } => put_string(out, path),
        Request::Setstat { path, attrs } | Request::Mkdir { path, attrs } => {
            put_string(out, path);
            attrs.encode(out);
        }
        Request::Fsetstat { handle, attrs } => {
            put_string(out, handle);
            attrs.encode(out);
        }
        Request::Extended { name, fields } => {
            put_string(out, name.as_bytes());
            for field in fields.iter() {
                put_string(out, field);
            }
        }
    }
    let len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Starts a WRITE packet whose `data_len` bytes of data the caller appends
/// (read from the file straight into the packet, with no copy).
pub fn encode_write_header(id: u32, handle: &[u8], offset: u64, data_len: u32, out: &mut BytesMut) {
    let len = (write_header_len(handle) - 4) as u32 + data_len;
    out.put_u32(len);
    out.put_u8(WRITE);
    out.put_u32(id);
    put_string(out, handle);
    out.put_u64(offset);
    out.put_u32(data_len);
}

/// One entry of a NAME reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameEntry {
    pub filename: Vec<u8>,
    pub attrs: Attrs,
}

/// A reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status { code: u32, message: Vec<u8> },
    Handle(Vec<u8>),
    Data(Bytes),
    Name(Vec<NameEntry>),
    Attrs(Attrs),
    ExtendedReply(Bytes),
}

/// The server's VERSION: its protocol version and extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: u32,
    pub extensions: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads fields out of one packet, never past its end.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("message shorter than its fields".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(b);
        Ok(u64::from_be_bytes(array))
    }

    pub fn string(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Decodes a VERSION packet (without its length).
pub fn decode_version(packet: &[u8]) -> Result<Version, String> {
    let mut input = Reader::new(packet);
    if input.u8()? != VERSION {
        return Err("the server's first message is not its version".into());
    }
    let version = input.u32()?;
    let mut extensions = Vec::new();
    // Each extension takes at least 8 bytes, so the packet bounds them.
    while !input.is_empty() {
        let name = input.string()?.to_vec();
        let data = input.string()?.to_vec();
        extensions.push((name, data));
    }
    Ok(Version {
        version,
        extensions,
    })
}

/// Decodes a reply packet (without its length): its request id and body.
/// A DATA reply's data is a slice of `packet`, not a copy.
pub fn decode_reply(packet: &Bytes) -> Result<(u32, Reply), String> {
    let mut input = Reader::new(packet);
    let kind = input.u8()?;
    let id = input.u32()?;
    let reply = match kind {
        STATUS => {
            let code = input.u32()?;
            // Servers of version 3 send a message and a language tag; old
            // ones may send neither.
            let message = if input.is_empty() {
                Vec::new()
            } else {
                let message = input.string()?.to_vec();
                if !input.is_empty() {
                    input.string()?;
                }
                message
            };
            Reply::Status { code, message }
        }
        HANDLE => Reply::Handle(input.string()?.to_vec()),
        DATA => {
            let len = input.u32()? as usize;
            let start = packet.len() - input.rest().len();
            if input.rest().len() < len {
                return Err("message shorter than its fields".into());
            }
            input.take(len)?;
            Reply::Data(packet.slice(start..start + len))
        }
        NAME => {
            let count = input.u32()?;
            // No allocation on the peer's word: each entry takes at least
            // 12 bytes, so the packet itself bounds the count.
            let mut entries = Vec::with_capacity((count as usize).min(input.rest().len() / 12));
            for _ in 0..count {
                let filename = input.string()?.to_vec();
                input.string()?; // the long name, for humans
                let attrs = Attrs::decode(&mut input)?;
                entries.push(NameEntry { filename, attrs });
            }
            Reply::Name(entries)
        }
        ATTRS => Reply::Attrs(Attrs::decode(&mut input)?),
        EXTENDED_REPLY => {
            let start = packet.len() - input.rest().len();
            Reply::ExtendedReply(packet.slice(start..))
        }
        other => return Err(format!("unexpected message type {other}")),
    };
    if !input.is_empty() && !matches!(reply, Reply::ExtendedReply(_)) {
        return Err("message longer than its fields".into());
    }
    Ok((id, reply))
}

/// `limits@openssh.com`'s reply: the server's largest packet, read and
/// write, and how many handles it can hold open (0 where it sets no
/// limit or does not know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_packet: u64,
    pub max_read: u64,
    pub max_write: u64,
    pub open_handles: u64,
}

pub fn decode_limits(data: &[u8]) -> Result<Limits, String> {
    let mut input = Reader::new(data);
    let limits = Limits {
        max_packet: input.u64()?,
        max_read: input.u64()?,
        max_write: input.u64()?,
        open_handles: input.u64()?,
    };
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(packet: &BytesMut) -> Bytes {
        let len = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]) as usize;
        assert_eq!(len, packet.len() - 4, "length field");
        Bytes::copy_from_slice(&packet[4..])
    }

    #[test]
    fn requests_are_framed_with_their_lengths() {
        let mut out = BytesMut::new();
        let attrs = Attrs {
            permissions: Some(0o644),
            times: Some((1, 2)),
            ..Attrs::default()
        };
        encode(
            7,
            &Request::Open {
                path: b"a\xffb",
                flags: OPEN_WRITE | OPEN_CREAT,
                attrs: &attrs,
            },
            &mut out,
        );
        let packet = body(&out);
        let mut input = Reader::new(&packet);
        assert_eq!(input.u8().unwrap(), OPEN);
        assert_eq!(input.u32().unwrap(), 7);
        assert_eq!(input.string().unwrap(), b"a\xffb");
        assert_eq!(input.u32().unwrap(), OPEN_WRITE | OPEN_CREAT);
        assert_eq!(Attrs::decode(&mut input).unwrap(), attrs);
        assert!(input.is_empty());

        let mut out = BytesMut::new();
        encode_write_header(9, &[0, 0, 0, 200], 5, 3, &mut out);
        out.put_slice(b"xyz");
        assert_eq!(out.len(), write_header_len(&[0, 0, 0, 200]) + 3);
        let packet = body(&out);
        let mut input = Reader::new(&packet);
        assert_eq!(input.u8().unwrap(), WRITE);
        assert_eq!(input.u32().unwrap(), 9);
        assert_eq!(input.string().unwrap(), &[0, 0, 0, 200]);
        assert_eq!(input.u64().unwrap(), 5);
        assert_eq!(input.string().unwrap(), b"xyz");
    }

    #[test]
    fn replies_are_read_strictly() {
        let data = Bytes::from_static(b"\x67\0\0\0\x05\0\0\0\x03abc");
        assert_eq!(
            decode_reply(&data).unwrap(),
            (5, Reply::Data(Bytes::from_static(b"abc")))
        );
        // A count that promises more than the packet holds.
        let names = Bytes::from_static(b"\x68\0\0\0\x01\xff\xff\xff\xff\0\0\0\x01a");
        assert!(decode_reply(&names).is_err());
        // Data longer than the packet, trailing bytes, unknown types.
        assert!(decode_reply(&Bytes::from_static(b"\x67\0\0\0\x05\0\0\0\x09abc")).is_err());
        assert!(decode_reply(&Bytes::from_static(b"\x66\0\0\0\x01\0\0\0\x01hX")).is_err());
        assert!(decode_reply(&Bytes::from_static(b"\x01\0\0\0\x01")).is_err());
        // A status without message (old servers) and with one.
        assert_eq!(
            decode_reply(&Bytes::from_static(b"\x65\0\0\0\x02\0\0\0\x01")).unwrap(),
            (
                2,
                Reply::Status {
                    code: FX_EOF,
                    message: vec![]
                }
            )
        );
        let status = Bytes::from_static(b"\x65\0\0\0\x02\0\0\0\x04\0\0\0\x04fail\0\0\0\0");
        assert_eq!(
            decode_reply(&status).unwrap(),
            (
                2,
                Reply::Status {
                    code: FX_FAILURE,
                    message: b"fail".to_vec()
                }
            )
        );
    }

    #[test]
    fn versions_and_limits() {
        let packet = b"\x02\0\0\0\x03\0\0\0\x12limits@openssh.com\0\0\0\x011";
        let version = decode_version(packet).unwrap();
        assert_eq!(version.version, 3);
        assert_eq!(version.extensions[0].0, b"limits@openssh.com");
        assert!(decode_version(b"\x02\0\0\0\x03\0\0\0\x09short").is_err());
        let mut limits = BytesMut::new();
        for n in [262_144u64, 261_120, 261_120, 1024] {
            limits.put_u64(n);
        }
        assert_eq!(
            decode_limits(&limits).unwrap(),
            Limits {
                max_packet: 262_144,
                max_read: 261_120,
                max_write: 261_120,
                open_handles: 1024,
            }
        );
    }
}
