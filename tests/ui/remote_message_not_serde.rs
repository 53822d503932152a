use understudy::RemoteMessage;

#[derive(RemoteMessage)]
struct Plain {
    n: u64,
}

fn main() {}
