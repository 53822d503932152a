use understudy::prelude::*;

#[derive(Actor)]
struct A;

#[messages]
impl A {
    #[message]
    fn stop(&mut self) {}
}

fn main() {}
