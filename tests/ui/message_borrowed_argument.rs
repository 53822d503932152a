use understudy::prelude::*;

#[derive(Actor)]
struct A;

#[messages]
impl A {
    #[message]
    fn greet(&self, who: &str) {
        let _ = who;
    }
}

fn main() {}
