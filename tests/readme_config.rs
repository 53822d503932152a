//! The configuration shown in the README parses as a node configuration.

use understudy::cluster::node::NodeConfig;

#[test]
fn the_readme_toml_example_is_a_valid_node_config() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```toml\nname = ")
        .expect("a node config example in the README")
        + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("closing fence");
    let config = NodeConfig::from_toml(&readme[start..end]).expect("the README's config parses");
    assert_eq!(config.name, "alpha");
    assert_eq!(config.seeds.len(), 1);
    assert_eq!(config.mesh.lanes, 4);
    // The example shows the defaults it comments on.
    let defaults = NodeConfig::new("prod", "alpha");
    assert_eq!(
        config.membership.probe_period,
        defaults.membership.probe_period
    );
    assert_eq!(config.mesh, defaults.mesh);
    assert_eq!(config.remote, defaults.remote);
    assert_eq!(config.extensions, defaults.extensions);
    config.validate().expect("the README's config is valid");
}

#[test]
fn the_readme_registry_settings_parse_and_show_the_defaults() {
    use understudy::registry::RegistryConfig;
    let readme = include_str!("../README.md");
    let start = readme
        .find("```toml\nbootstrap_expect = ")
        .expect("a registry config example in the README")
        + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("closing fence");
    let config: RegistryConfig = toml::from_str(&readme[start..end]).expect("it parses");
    config.validate().expect("it is valid");
    let defaults = RegistryConfig::default();
    assert_eq!(
        RegistryConfig {
            bootstrap_expect: None,
            ..config
        },
        defaults,
        "the README shows the defaults (bootstrap_expect aside)"
    );
}
