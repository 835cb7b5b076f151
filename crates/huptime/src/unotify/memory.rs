//! Reading a supervised program's memory: the sockaddr of its bind() ([`super::answer`]), the
//! pollfd array or fd_set it waits on ([`super::ready`]). The one place process_vm_readv is called.

/// Reads `len` bytes at `addr` in process `pid` (any thread id of it); None unless all of them
/// could be read (an unmapped or freed address, or a process that is gone).
pub fn read(pid: i32, addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    // SAFETY: one local iovec over `buf`; the remote one is only read by the kernel.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    (n == len as isize).then_some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_memory_and_refuses_an_unmapped_address() {
        let data = [7u8, 1, 2, 9];
        let me = std::process::id() as i32;
        assert_eq!(read(me, data.as_ptr() as u64, 4), Some(data.to_vec()));
        assert_eq!(read(me, 0, 4), None);
    }
}
