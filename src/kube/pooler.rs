//! The pooler's instances as Kubernetes shows them: the Running pods
//! behind its Service, each at its pod IP and the container port the
//! Service targets (by name, resolved per pod, or by number).

use anyhow::{anyhow, Result};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::Client;

use super::bounded;
use crate::pooler::Instance;

/// The instances behind `service` in `namespace`, sorted by pod name.
/// `port` (a container port's name or number) overrides the Service's
/// first port's target.
pub async fn instances(
    client: &Client,
    namespace: &str,
    service: &str,
    port: Option<&str>,
) -> Result<Vec<Instance>> {
    let svc: Service = bounded(&format!("reading service/{service}"), async {
        Api::<Service>::namespaced(client.clone(), namespace)
            .get(service)
            .await
            .map_err(|e| anyhow!("service/{service} in {namespace}: {e}"))
    })
    .await?;
    let spec = svc.spec.unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Err(anyhow!(
            "service/{service} has no selector: its pods cannot be found"
        ));
    }
    let target = match port {
        Some(p) => match p.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(p.to_string()),
        },
        None => {
            let first = spec
                .ports
                .unwrap_or_default()
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("service/{service} has no port"))?;
            first.target_port.unwrap_or(IntOrString::Int(first.port))
        }
    };
    let labels = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = bounded(&format!("listing the pods of service/{service}"), async {
        Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels(&labels))
            .await
            .map_err(|e| anyhow!("pods of service/{service}: {e}"))
    })
    .await?;
    let mut out = Vec::new();
    for pod in pods.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let (Some("Running"), Some(ip), false) =
            (status.phase.as_deref(), status.pod_ip.clone(), deleting)
        else {
            continue;
        };
        let port = match &target {
            IntOrString::Int(n) => *n,
            IntOrString::String(named) => pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(named.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| {
                    anyhow!("pod {name} has no container port named {named} (service/{service})")
                })?,
        };
        out.push(Instance {
            name,
            host: ip,
            port: u16::try_from(port)
                .map_err(|_| anyhow!("service/{service}: port {port} is out of range"))?,
        });
    }
    out.sort();
    Ok(out)
}
