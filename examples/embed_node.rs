//! A VRRP node inside a vendor program: one virtual address on eth0, transitions reported to
//! the program, priority 0 and release on exit. Run as root inside a test namespace, e.g.
//! `ip netns exec NS cargo run --example embed_node -- eth0 10.99.0.100/24 150`.
use vrrp::linux::{block_termination_signals, Event, InstanceConfig, Node, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let interface = args.next().unwrap_or_else(|| "eth0".into());
    let vip = args
        .next()
        .unwrap_or_else(|| "10.99.0.100/24".into())
        .parse()?;
    let priority: u8 = args.next().unwrap_or_else(|| "100".into()).parse()?;

    let mut instance = InstanceConfig::new("PBX", &interface, 51, &[vip]);
    instance.router.priority = priority;
    instance.router.advertisement_interval = std::time::Duration::from_millis(100);

    // SIGTERM / SIGINT are handled by the node's thread: priority 0, addresses released.
    block_termination_signals()?;
    let node = Node::start(
        vec![instance],
        Options {
            stop_on_signals: true,
            realtime_priority: Some(10),
        },
    )?;
    for event in node.events().iter() {
        match event {
            Event::StateChanged { to, reason, .. } => {
                println!("PBX is now {to} ({reason})"); // start or stop services here
            }
            Event::Error { message, .. } => eprintln!("VRRP problem: {message}"),
            Event::Stopped => break,
            _ => {}
        }
    }
    node.join();
    Ok(())
}
