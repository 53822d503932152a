use understudy::prelude::*;

#[derive(Actor)]
struct A;

#[messages]
impl A {
    fn helper(&self) {}
}

fn main() {}
