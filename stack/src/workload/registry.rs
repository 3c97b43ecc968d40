//! The services and performance groups tasks belong to, per shard: a task is spawned for a
//! service (by the appliance, from its configuration) and the tasks it spawns belong to
//! the same one. The manager reports velocity per service and dispatches the slowest
//! performance group first.

/// A service's index in its shard's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceId(pub(crate) u16);

/// The service of tasks spawned outside any service (tests, the shard's own).
pub const UNNAMED: ServiceId = ServiceId(0);

/// Names of services and groups.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Per service: its name and its group's index.
    pub(crate) services: Vec<(String, Option<u16>)>,
    /// Group names.
    pub(crate) groups: Vec<String>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            services: vec![("other".into(), None)],
            groups: Vec::new(),
        }
    }
}

/// More services or groups than a shard can name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("more than {max} services or performance groups on one shard")]
pub struct TooMany {
    /// The limit.
    pub max: usize,
}

impl Registry {
    /// The service called `name` (registered on first use) in performance group `group`.
    /// A service registered again keeps its first group.
    pub fn register(&mut self, name: &str, group: Option<&str>) -> Result<ServiceId, TooMany> {
        const MAX: usize = u16::MAX as usize;
        if let Some(i) = self.services.iter().position(|(n, _)| n == name) {
            return Ok(ServiceId(i as u16));
        }
        let group = match group {
            None => None,
            Some(g) => Some(match self.groups.iter().position(|n| n == g) {
                Some(i) => i as u16,
                None if self.groups.len() < MAX => {
                    self.groups.push(g.to_string());
                    (self.groups.len() - 1) as u16
                }
                None => return Err(TooMany { max: MAX }),
            }),
        };
        if self.services.len() >= MAX {
            return Err(TooMany { max: MAX });
        }
        self.services.push((name.to_string(), group));
        Ok(ServiceId((self.services.len() - 1) as u16))
    }

    /// The group of a service.
    pub(crate) fn group_of(&self, s: ServiceId) -> Option<u16> {
        self.services.get(usize::from(s.0)).and_then(|(_, g)| *g)
    }

    /// The name of a service.
    pub(crate) fn name_of(&self, s: u16) -> &str {
        self.services
            .get(usize::from(s))
            .map_or("other", |(n, _)| n.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn services_are_named_once_and_groups_shared() {
        let mut r = Registry::default();
        let a = r.register("echo tcp/7", Some("short")).unwrap();
        let b = r.register("discard tcp/9", Some("bulk")).unwrap();
        let c = r.register("proxy web", Some("short")).unwrap();
        assert_eq!(r.register("echo tcp/7", Some("bulk")).unwrap(), a);
        assert_ne!(a, UNNAMED);
        assert_eq!(r.group_of(a), r.group_of(c));
        assert_ne!(r.group_of(a), r.group_of(b));
        assert_eq!(r.group_of(UNNAMED), None);
        assert_eq!(r.name_of(b.0), "discard tcp/9");
        assert_eq!(r.groups.len(), 2);
    }
}
