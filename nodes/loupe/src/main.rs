//! `loupe`: see the library crate ([`loupe`]) for the commands.

/// mimalloc instead of glibc's malloc: after a burst of camera-size images, glibc keeps the
/// freed buffers in its arenas (RSS stayed at 1.2-1.5 GiB after an overload), mimalloc gives
/// them back to the system (`benches/overload.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    loupe::main()
}
