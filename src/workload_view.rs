//! The workload managers seen from outside: the report `sixstack workload` prints (policy,
//! velocity of work per service and per performance group, the busiest tasks, termination
//! statistics, per shard and in all), the per-service velocity `sixstack stats` shows, and
//! run-time policy changes (`sixstack workload set KEY=VALUE ...`). The report is built on
//! the control thread from what the shards published at their last interval end.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sixstack_stack::workload::{Board, Policy, RunawayAction, ServiceLoad, ShardLoad};

use crate::stats_view::columns;

/// The policy in force, setting by setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicyView {
    /// The manager moves priorities.
    pub enabled: bool,
    /// Work units per interval before a task drops a step.
    pub cicsint: u64,
    /// Lowest managed priority.
    pub prtymin: u8,
    /// Highest managed priority.
    pub prtymax: u8,
    /// Runaway multiplier of `cicsint`.
    pub runaway: u64,
    /// `log`, `demote` or `abort`.
    pub runaway_action: String,
    /// Tasks with at most this many work units are left out of the statistics.
    pub trivial: u64,
    /// The interval, milliseconds.
    pub interval_ms: u64,
    /// Priority step of one move.
    pub step: u8,
}

impl From<&Policy> for PolicyView {
    fn from(p: &Policy) -> Self {
        PolicyView {
            enabled: p.enabled,
            cicsint: p.cicsint,
            prtymin: p.prtymin,
            prtymax: p.prtymax,
            runaway: p.runaway,
            runaway_action: match p.action {
                RunawayAction::Log => "log",
                RunawayAction::Demote => "demote",
                RunawayAction::Abort => "abort",
            }
            .into(),
            trivial: p.trivial,
            interval_ms: p.interval.as_millis() as u64,
            step: p.step,
        }
    }
}

/// A service's tasks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceView {
    /// Its name, e.g. `echo tcp/7`.
    pub name: String,
    /// Its performance group.
    pub group: Option<String>,
    /// Tasks alive.
    pub live: u64,
    /// Tasks ended.
    pub ended: u64,
    /// Velocity of work, percent: samples not delayed over all samples (`None`: no sample
    /// yet).
    pub velocity: Option<f64>,
    /// Work units in all.
    pub work: u64,
    /// Priority changes the manager made.
    pub changes: u64,
    /// Runaway intervals.
    pub runaways: u64,
    /// Lowest and highest priority of its live tasks.
    pub priorities: Option<(u8, u8)>,
}

impl From<&ServiceLoad> for ServiceView {
    fn from(s: &ServiceLoad) -> Self {
        ServiceView {
            name: s.name.clone(),
            group: s.group.clone(),
            live: s.live,
            ended: s.ended,
            velocity: s.velocity(),
            work: s.work,
            changes: s.changes,
            runaways: s.runaways,
            priorities: s.priorities,
        }
    }
}

/// A performance group in the shard's last interval.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupView {
    /// Its name.
    pub name: String,
    /// Live tasks.
    pub live: u64,
    /// Velocity in the last interval, percent.
    pub velocity: Option<f64>,
    /// Dispatched first in this interval.
    pub boosted: bool,
}

/// One of the busiest live tasks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskRow {
    /// Its slot on the shard.
    pub task: u32,
    /// Its service.
    pub service: String,
    /// Priority now.
    pub priority: u8,
    /// Priority it started at.
    pub initial: u8,
    /// Work units in the last interval.
    pub work: u64,
    /// Work units in all.
    pub total: u64,
    /// Its velocity of work, percent.
    pub velocity: Option<f64>,
}

/// Termination statistics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SummaryView {
    /// Tasks that ended.
    pub tasks: u64,
    /// Of them, trivial.
    pub trivial: u64,
    /// Average work units of the non-trivial ones.
    pub average_work: Option<f64>,
    /// Work-unit percentiles (upper bounds of power-of-two buckets).
    pub p50_work: Option<u64>,
    /// 90th percentile.
    pub p90_work: Option<u64>,
    /// 99th percentile.
    pub p99_work: Option<u64>,
    /// Average velocity, percent.
    pub velocity: Option<f64>,
    /// Priority changes.
    pub changes: u64,
    /// Runaway intervals.
    pub runaways: u64,
}

/// One shard's manager.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShardView {
    /// Shard index.
    pub shard: u32,
    /// Per service.
    pub services: Vec<ServiceView>,
    /// Per performance group.
    pub groups: Vec<GroupView>,
    /// The busiest live tasks of the last interval.
    pub busiest: Vec<TaskRow>,
    /// Termination statistics.
    pub summary: SummaryView,
    /// Frames of connections ranked below this priority wait in the deferred ingress lane.
    pub ingress_cut: u8,
    /// Frames that waited in the deferred lane, in all.
    pub frames_deferred: u64,
}

impl From<&ShardLoad> for ShardView {
    fn from(l: &ShardLoad) -> Self {
        let s = &l.summary;
        ShardView {
            shard: l.shard,
            services: l.services.iter().map(ServiceView::from).collect(),
            groups: l
                .groups
                .iter()
                .map(|g| GroupView {
                    name: g.name.clone(),
                    live: g.live,
                    velocity: g.velocity,
                    boosted: g.boosted,
                })
                .collect(),
            busiest: l
                .busiest
                .iter()
                .map(|t| TaskRow {
                    task: t.task,
                    service: t.service.clone(),
                    priority: t.priority,
                    initial: t.initial,
                    work: t.work,
                    total: t.total,
                    velocity: t.velocity,
                })
                .collect(),
            summary: SummaryView {
                tasks: s.tasks,
                trivial: s.trivial,
                average_work: s.average_work(),
                p50_work: s.work_percentile(0.5),
                p90_work: s.work_percentile(0.9),
                p99_work: s.work_percentile(0.99),
                velocity: s.average_velocity(),
                changes: s.changes,
                runaways: s.runaways,
            },
            ingress_cut: l.ingress_cut,
            frames_deferred: l.frames_deferred,
        }
    }
}

/// Everything `sixstack workload` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkloadView {
    /// The policy in force.
    pub policy: PolicyView,
    /// Per service, all shards together.
    pub services: Vec<ServiceView>,
    /// Per shard.
    pub shards: Vec<ShardView>,
}

/// The managers' report from the board.
pub fn view(board: &Board) -> WorkloadView {
    let mut loads = board.report();
    loads.sort_by_key(|l| l.shard);
    let mut services: Vec<ServiceLoad> = Vec::new();
    for l in &loads {
        for s in &l.services {
            match services.iter_mut().find(|t| t.name == s.name) {
                Some(t) => t.add(s),
                None => services.push(s.clone()),
            }
        }
    }
    WorkloadView {
        policy: PolicyView::from(&board.policy()),
        services: services.iter().map(ServiceView::from).collect(),
        shards: loads.iter().map(ShardView::from).collect(),
    }
}

/// Applies `KEY=VALUE` settings to the board's policy, all or none: a setting that does
/// not parse, or a result that fails the policy's checks, changes nothing. Returns the
/// line for the operator.
pub fn apply(board: &Board, settings: &[String]) -> Result<String, String> {
    if settings.is_empty() {
        return Err("nothing to set: give KEY=VALUE settings".into());
    }
    let mut policy = board.policy();
    for s in settings {
        let Some((k, v)) = s.split_once('=') else {
            let shown: String = s.chars().take(60).collect();
            return Err(format!("{shown:?} is not KEY=VALUE"));
        };
        policy = policy.with(k.trim(), v.trim())?;
    }
    board
        .set_policy(policy.clone())
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "workload policy now {policy}; every shard takes it at its next interval end"
    ))
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn prios(p: Option<(u8, u8)>) -> String {
    match p {
        None => "-".into(),
        Some((a, b)) if a == b => a.to_string(),
        Some((a, b)) => format!("{a}-{b}"),
    }
}

/// The per-service table (`sixstack stats` shows it too).
pub fn service_table(services: &[ServiceView]) -> String {
    let mut rows = vec![[
        "service",
        "group",
        "live",
        "ended",
        "velocity%",
        "priority",
        "work_units",
        "changes",
        "runaways",
    ]
    .map(String::from)
    .to_vec()];
    for s in services {
        rows.push(vec![
            s.name.clone(),
            s.group.clone().unwrap_or_else(|| "-".into()),
            s.live.to_string(),
            s.ended.to_string(),
            opt_pct(s.velocity),
            prios(s.priorities),
            s.work.to_string(),
            s.changes.to_string(),
            s.runaways.to_string(),
        ]);
    }
    columns(&rows)
}

/// The whole report as text.
pub fn render(v: &WorkloadView) -> String {
    let p = &v.policy;
    let mut out = format!(
        "workload manager {}: cicsint {} prtymin {} prtymax {} runaway {}x ({}) trivial {} \
         interval {} ms step {}\n\n",
        if p.enabled { "on" } else { "off" },
        p.cicsint,
        p.prtymin,
        p.prtymax,
        p.runaway,
        p.runaway_action,
        p.trivial,
        p.interval_ms,
        p.step
    );
    out.push_str(&service_table(&v.services));
    for s in &v.shards {
        let _ = writeln!(
            out,
            "\nshard {}: ingress cut {}, {} frames deferred",
            s.shard,
            if s.ingress_cut == 0 {
                "-".to_string()
            } else {
                s.ingress_cut.to_string()
            },
            s.frames_deferred
        );
        if !s.groups.is_empty() {
            let mut rows = vec![["group", "live", "velocity%", "first"]
                .map(String::from)
                .to_vec()];
            for g in &s.groups {
                rows.push(vec![
                    g.name.clone(),
                    g.live.to_string(),
                    opt_pct(g.velocity),
                    if g.boosted { "yes" } else { "" }.into(),
                ]);
            }
            out.push_str(&columns(&rows));
        }
        if !s.busiest.is_empty() {
            let mut rows = vec![[
                "task",
                "service",
                "priority",
                "initial",
                "work_units(last)",
                "work_units",
                "velocity%",
            ]
            .map(String::from)
            .to_vec()];
            for t in &s.busiest {
                rows.push(vec![
                    t.task.to_string(),
                    t.service.clone(),
                    t.priority.to_string(),
                    t.initial.to_string(),
                    t.work.to_string(),
                    t.total.to_string(),
                    opt_pct(t.velocity),
                ]);
            }
            out.push_str(&columns(&rows));
        }
        let m = &s.summary;
        let num = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| format!("<={v}"));
        let _ = writeln!(
            out,
            "ended tasks {} ({} trivial): work units avg {} p50 {} p90 {} p99 {}; velocity {}%; \
             priority changes {}; runaways {}",
            m.tasks,
            m.trivial,
            m.average_work
                .map_or_else(|| "-".into(), |v| format!("{v:.1}")),
            num(m.p50_work),
            num(m.p90_work),
            num(m.p99_work),
            opt_pct(m.velocity),
            m.changes,
            m.runaways
        );
    }
    out
}

/// `sixstack workload`: the report (table or JSON), or `set` settings first.
pub fn workload_command(socket: &Path, json: bool, settings: &[String]) -> Result<(), String> {
    if !settings.is_empty() {
        let line = crate::control::workload_set(socket, settings).map_err(|e| e.to_string())?;
        println!("{line}");
        return Ok(());
    }
    let v = crate::control::query_workload(socket).map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", render(&v));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn settings_apply_all_or_nothing() {
        let board = Board::new(Policy::default());
        let line = apply(&board, &["cicsint=4000".into(), "enabled=false".into()]).unwrap();
        assert!(line.contains("cicsint=4000"), "{line}");
        assert_eq!(board.policy().cicsint, 4000);
        assert!(!board.policy().enabled);
        // One bad setting: nothing changes.
        let e = apply(&board, &["cicsint=10".into(), "prtymin=0".into()]).unwrap_err();
        assert!(e.contains("prtymin"), "{e}");
        assert_eq!(board.policy().cicsint, 4000);
        assert!(apply(&board, &["cicsint".into()]).is_err());
        assert!(apply(&board, &[]).is_err());
        assert!(apply(&board, &["colour=blue".into()])
            .unwrap_err()
            .contains("unknown setting"));
    }

    #[test]
    fn the_report_renders_services_groups_and_tasks() {
        let v = WorkloadView {
            policy: PolicyView::from(&Policy::default()),
            services: vec![ServiceView {
                name: "echo tcp/7".into(),
                group: Some("short".into()),
                live: 2,
                ended: 10,
                velocity: Some(97.5),
                work: 1234,
                changes: 3,
                runaways: 0,
                priorities: Some((100, 102)),
            }],
            shards: vec![ShardView {
                shard: 0,
                groups: vec![GroupView {
                    name: "short".into(),
                    live: 2,
                    velocity: Some(50.0),
                    boosted: true,
                }],
                busiest: vec![TaskRow {
                    task: 7,
                    service: "discard tcp/9".into(),
                    priority: 60,
                    initial: 100,
                    work: 9000,
                    total: 90000,
                    velocity: Some(80.0),
                }],
                ingress_cut: 100,
                frames_deferred: 42,
                ..ShardView::default()
            }],
        };
        let text = render(&v);
        for want in [
            "workload manager on: cicsint 100",
            "echo tcp/7",
            "97.5",
            "100-102",
            "ingress cut 100, 42 frames deferred",
            "yes",
            "discard tcp/9",
            "9000",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
    }
}
