use understudy::prelude::*;

#[derive(Actor)]
struct A;

#[messages(remot)]
impl A {
    #[message]
    fn ping(&self) {}
}

fn main() {}
