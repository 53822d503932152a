use serde::{Deserialize, Serialize};
use understudy::RemoteMessage;

#[derive(Serialize, Deserialize, RemoteMessage)]
struct Wrapper<T> {
    inner: T,
}

fn main() {}
