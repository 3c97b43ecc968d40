//! Any bytes as frames arriving at a shard: split into frames at 0xff 0x00 markers, injected
//! through the pipe driver, one round per frame. The shard must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sixstack_drivers::pipe;
use sixstack_stack::smoltcp::time::Instant;
use sixstack_stack::{Shard, StackConfig};

fuzz_target!(|data: &[u8]| {
    let (_a, b) = pipe::pair(64, 1500);
    let mut c = StackConfig::new([2, 0, 0, 0, 0, 2]);
    c.ipv4 = Some((std::net::Ipv4Addr::new(10, 0, 0, 2), 24));
    c.ipv6 = vec![("fd00::2".parse().unwrap(), 64)];
    let Ok(mut shard) = Shard::new(b, c) else { return };
    let net = shard.net();
    net.spawn(sixstack_basic_echo(net.clone()));
    let mut now = Instant::from_secs(1);
    for frame in data.split(|&x| x == 0xff) {
        shard.link().inject(frame);
        shard.poll_at(now);
        now += sixstack_stack::smoltcp::time::Duration::from_millis(1);
    }
});

async fn sixstack_basic_echo(net: sixstack_stack::Net) {
    if let Ok(l) = sixstack_stack::TcpListener::bind(&net, 7) {
        while let Ok((_s, _)) = l.accept().await {}
    }
}
