//! One integration-test binary driving the real `scimsync` CLI against real SCIM servers:
//! the third-party scim2-server (started per test from the venv `scripts/test.sh` makes) and
//! the project's own emulator.
mod support;

mod apply_faults;
mod apply_scim2_server;
mod apply_vendors;
mod architecture;
mod audit;
mod config_errors;
mod convergence;
mod crash_trials;
mod demo;
mod django_scim;
mod fault_matrix;
mod file_source;
mod gen_serve;
mod group_operations;
mod hostile;
mod hostile_servers;
mod idp_connectors;
mod lake;
mod mapped_attributes;
mod plan_scim2_server;
mod pull_emulator;
mod pull_scim2_server;
mod put_only_apps;
mod readme_walkthrough;
mod reconcile;
mod renamed_groups;
mod reused_emails;
mod scim_client;
mod secrets;
mod store_retention;
mod store_upkeep;
mod tls;
