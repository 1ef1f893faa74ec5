//! An SFTP server as the destination of `-3`, whatever the origin speaks:
//! directories made as an upload makes them, each file's WRITEs several in
//! flight, and its last WRITEs, size and CLOSE left unawaited as an
//! upload's are.

use std::collections::VecDeque;

use tokio::io::AsyncRead;

use super::codec::{self, Attrs, Request};
use super::{
    FILE_MODE_BITS, RemoteDirectory, Sftp, UploadTarget, clamp_time, handle_of, remote_name,
};
use crate::engine::{DataWrite, Destination, Refusal, SessionError, Times};

pub struct SftpDestination<'s, 'e, R, W> {
    sftp: &'s mut Sftp<'e, R, W>,
    target: UploadTarget,
    /// The directories being filled, outermost first.
    open: Vec<RemoteDirectory>,
    file: Option<WrittenFile>,
}

/// The file being written.
struct WrittenFile {
    handle: Vec<u8>,
    path: Vec<u8>,
    mode: u32,
    times: Option<(u32, u32)>,
    offset: u64,
    in_flight: VecDeque<u32>,
    /// Why the server refused a WRITE: nothing more is sent.
    failure: Option<String>,
}

impl<'s, 'e, R, W> SftpDestination<'s, 'e, R, W> {
    pub fn new(sftp: &'s mut Sftp<'e, R, W>, target: UploadTarget) -> Self {
        SftpDestination {
            sftp,
            target,
            open: Vec::new(),
            file: None,
        }
    }
}

/// SFTP's (atime, mtime) in 32 bits.
fn sftp_times(times: Times) -> (u32, u32) {
    let clamp = |t: u64| clamp_time(i64::try_from(t).unwrap_or(i64::MAX));
    (clamp(times.atime), clamp(times.mtime))
}

impl<R, W> Destination for SftpDestination<'_, '_, R, W>
where
    R: AsyncRead + Unpin,
    W: DataWrite,
{
    async fn enter_directory(
        &mut self,
        name: &[u8],
        mode: u32,
        times: Option<Times>,
    ) -> Result<Refusal, SessionError> {
        let path = remote_name(&self.target, &self.open, name);
        let made = self
            .sftp
            .make_directory_with(&path, mode, times.map(sftp_times))
            .await?;
        Ok(match made {
            Ok(directory) => {
                self.open.push(directory);
                None
            }
            Err(why) => Some(why),
        })
    }

    async fn leave_directory(&mut self) -> Result<Refusal, SessionError> {
        let Some(done) = self.open.pop() else {
            return Ok(None);
        };
        let Some(attrs) = done.finish else {
            return Ok(None);
        };
        let request = Request::Setstat {
            path: &done.path,
            attrs: &attrs,
        };
        Ok(match self.sftp.status_of(&request).await? {
            Some(why) => Some(
                self.sftp
                    .fail_remote(&done.path, &format!("set attributes: {why}")),
            ),
            None => None,
        })
    }

    async fn begin_file(
        &mut self,
        name: &[u8],
        mode: u32,
        _size: u64,
        times: Option<Times>,
    ) -> Result<Refusal, SessionError> {
        if let (None, UploadTarget::NewDirectory(named)) = (self.open.last(), &self.target) {
            let shown = [named.as_slice(), b"/"].concat();
            return Ok(Some(self.sftp.fail_remote(&shown, "Is a directory")));
        }
        let path = remote_name(&self.target, &self.open, name);
        let mode = mode & FILE_MODE_BITS;
        let create = Attrs {
            permissions: Some(mode),
            ..Attrs::default()
        };
        let open = Request::Open {
            path: &path,
            flags: codec::OPEN_WRITE | codec::OPEN_CREAT,
            attrs: &create,
        };
        let opened = self.sftp.call(&open).await?;
        let handle = match handle_of(opened)? {
            Ok(handle) => handle,
            Err(why) => return Ok(Some(self.sftp.fail_remote(&path, &why))),
        };
        self.file = Some(WrittenFile {
            handle,
            path,
            mode,
            times: times.map(sftp_times),
            offset: 0,
            in_flight: VecDeque::new(),
            failure: None,
        });
        Ok(None)
    }

    fn room(&self) -> Option<u64> {
        match &self.file {
            Some(file) if file.failure.is_none() => None,
            _ => Some(0),
        }
    }

    async fn file_data(&mut self, data: &[u8]) -> Result<(), SessionError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        if file.failure.is_some() {
            return Ok(());
        }
        let chunk = self.sftp.session.write_len.max(1) as usize;
        let most = self.sftp.requests_for(chunk as u32);
        for piece in data.chunks(chunk) {
            let len = piece.len() as u32;
            let (request, mut packet) =
                self.sftp
                    .session
                    .write_packet(&file.handle, file.offset, len);
            packet.extend_from_slice(piece);
            self.sftp.session.send_packet(packet.freeze()).await?;
            file.in_flight.push_back(request);
            file.offset += u64::from(len);
            while file.in_flight.len() >= most {
                if let Some(why) = self.sftp.await_write(&mut file.in_flight).await? {
                    file.failure = Some(why);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn end_file(&mut self, failure: Option<&str>) -> Result<Refusal, SessionError> {
        let Some(file) = self.file.take() else {
            return Ok(None);
        };
        let sftp = &mut *self.sftp;
        let file_number = sftp.next_file();
        let mut refusal = None;
        if failure.is_some() {
            // The origin said why (one error per file).
            sftp.failed_files.insert(file_number);
        } else if let Some(why) = &file.failure {
            sftp.failed_files.insert(file_number);
            refusal = Some(sftp.fail_remote(&file.path, why));
        }
        // The rest is not waited for: the next file starts meanwhile.
        for request in file.in_flight {
            sftp.defer(request, file_number, &file.path, "").await?;
        }
        let mut finish = Attrs {
            size: Some(file.offset),
            ..Attrs::default()
        };
        if sftp.options.preserve {
            finish.permissions = Some(file.mode);
            finish.times = file.times;
        }
        let request = sftp.session.send(&Request::Fsetstat {
            handle: &file.handle,
            attrs: &finish,
        });
        sftp.defer(request, file_number, &file.path, "set attributes")
            .await?;
        let request = sftp.session.send(&Request::Close {
            handle: &file.handle,
        });
        sftp.defer(request, file_number, &file.path, "close")
            .await?;
        Ok(refusal)
    }
}
