#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rscp::fuzz::sftp_download(data));
