//! The forwarding core: which participant receives which published track, and where keyframe
//! requests go. Plain data in, plain decisions out; no sockets, no clock.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use std::sync::Arc;

use bedside_proto::{ParticipantId, Role, Source, TrackKind, VisitId, VisitType};

use crate::policy::RoutingTable;

/// A published track, minted by the [`Forwarder`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(u64);

impl fmt::Debug for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// A decision for the shell to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start sending `track` to `subscriber` (needs a renegotiation with the subscriber).
    Subscribe {
        subscriber: ParticipantId,
        track: TrackId,
        publisher: ParticipantId,
        kind: TrackKind,
        source: Source,
    },
    /// Stop sending `track` to `subscriber`.
    Unsubscribe {
        subscriber: ParticipantId,
        track: TrackId,
    },
    /// Ask `publisher` for a keyframe on `track`.
    RequestKeyframe {
        publisher: ParticipantId,
        track: TrackId,
    },
}

#[derive(Debug)]
struct PeerEntry {
    visit: VisitId,
    visit_type: VisitType,
    role: Role,
    /// "Show my video" (group visits): rules marked `+shown` apply only when on.
    shown: bool,
    /// The visit is recording and this participant consented: the recorder role receives
    /// this participant's tracks only while it is on.
    recordable: bool,
}

#[derive(Debug)]
struct TrackEntry {
    publisher: ParticipantId,
    visit: VisitId,
    kind: TrackKind,
    source: Source,
    /// Subscribers whose negotiation finished; media flows to these only.
    active: Vec<ParticipantId>,
    /// Subscribers still negotiating.
    pending: Vec<ParticipantId>,
    last_keyframe_request: Option<Instant>,
}

/// The forwarding core. See the module docs.
pub struct Forwarder {
    policy: Arc<RoutingTable>,
    peers: HashMap<ParticipantId, PeerEntry>,
    tracks: HashMap<TrackId, TrackEntry>,
    next_track: u64,
    keyframe_interval: Duration,
    decisions: VecDeque<Decision>,
}

impl fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarder")
            .field("peers", &self.peers.len())
            .field("tracks", &self.tracks.len())
            .finish()
    }
}

impl Forwarder {
    /// The shortest gap between two keyframe requests sent to one publisher track: receivers
    /// ask often after loss, and every keyframe costs the publisher bandwidth.
    pub const DEFAULT_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

    pub fn new(policy: Arc<RoutingTable>) -> Self {
        Forwarder {
            policy,
            peers: HashMap::new(),
            tracks: HashMap::new(),
            next_track: 1,
            keyframe_interval: Self::DEFAULT_KEYFRAME_INTERVAL,
            decisions: VecDeque::new(),
        }
    }

    /// A participant's media session joined `visit`: it is offered every track of the visit
    /// the policy lets it receive.
    pub fn handle_peer_joined(
        &mut self,
        _now: Instant,
        peer: ParticipantId,
        visit: VisitId,
        visit_type: VisitType,
        role: Role,
    ) {
        if self.peers.contains_key(&peer) {
            return;
        }
        self.peers.insert(
            peer,
            PeerEntry {
                visit: visit.clone(),
                visit_type,
                role,
                shown: visit_type == VisitType::Consult,
                recordable: false,
            },
        );
        let mut tracks: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.visit == visit)
            .map(|(id, _)| *id)
            .collect();
        tracks.sort();
        for track in tracks {
            if self.allowed(peer, track) {
                self.subscribe(peer, track);
            }
        }
    }

    /// Whether the policy lets `subscriber` publish `source` (checked at negotiation).
    pub fn may_publish(&self, peer: ParticipantId, source: Source) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|p| self.policy.policy(p.visit_type).may_publish(p.role, source))
    }

    /// "Show my video" changed: subscriptions to this publisher's tracks follow the policy.
    pub fn handle_shown_changed(&mut self, _now: Instant, peer: ParticipantId, shown: bool) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.shown == shown {
            return;
        }
        p.shown = shown;
        self.reroute_publisher(peer);
    }

    /// Recording consent changed (the visit records and this participant consented, or not):
    /// the recorder receives this publisher's tracks only while `recordable` is on.
    pub fn handle_recordable_changed(
        &mut self,
        _now: Instant,
        peer: ParticipantId,
        recordable: bool,
    ) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.recordable == recordable {
            return;
        }
        p.recordable = recordable;
        self.reroute_publisher(peer);
    }

    /// Subscriptions to `peer`'s tracks follow the policy after a change of its flags.
    fn reroute_publisher(&mut self, peer: ParticipantId) {
        let mut published: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.publisher == peer)
            .map(|(id, _)| *id)
            .collect();
        published.sort();
        let mut others: Vec<ParticipantId> = self.peers.keys().copied().collect();
        others.sort();
        for track in published {
            for &sub in &others {
                let subscribed = self
                    .tracks
                    .get(&track)
                    .is_some_and(|t| t.active.contains(&sub) || t.pending.contains(&sub));
                match (subscribed, self.allowed(sub, track)) {
                    (false, true) => self.subscribe(sub, track),
                    (true, false) => self.unsubscribe(sub, track),
                    _ => {}
                }
            }
        }
    }

    /// Whether `subscriber` may receive `track` now.
    fn allowed(&self, subscriber: ParticipantId, track: TrackId) -> bool {
        let (Some(s), Some(t)) = (self.peers.get(&subscriber), self.tracks.get(&track)) else {
            return false;
        };
        let Some(p) = self.peers.get(&t.publisher) else {
            return false;
        };
        t.publisher != subscriber
            && s.visit == t.visit
            // The recorder gets only what consent allows (docs/design.md "Recording").
            && (s.role != Role::Recorder || p.recordable)
            && self
                .policy
                .policy(s.visit_type)
                .may_receive(s.role, p.role, t.source, p.shown)
    }

    /// A participant's media session ended: its tracks are withdrawn from everyone.
    pub fn handle_peer_left(&mut self, _now: Instant, peer: ParticipantId) {
        if self.peers.remove(&peer).is_none() {
            return;
        }
        let mut published: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.publisher == peer)
            .map(|(id, _)| *id)
            .collect();
        published.sort();
        for track in published {
            self.withdraw(track);
        }
        for t in self.tracks.values_mut() {
            t.active.retain(|p| *p != peer);
            t.pending.retain(|p| *p != peer);
        }
    }

    /// `publisher` started sending a track. Returns its id (none if the policy forbids
    /// publishing this source); subscriptions follow as decisions.
    pub fn handle_track_published(
        &mut self,
        _now: Instant,
        publisher: ParticipantId,
        kind: TrackKind,
        source: Source,
    ) -> Option<TrackId> {
        if !self.may_publish(publisher, source) || source.kind() != kind {
            return None;
        }
        let visit = self.peers.get(&publisher)?.visit.clone();
        let track = TrackId(self.next_track);
        self.next_track += 1;
        self.tracks.insert(
            track,
            TrackEntry {
                publisher,
                visit,
                kind,
                source,
                active: Vec::new(),
                pending: Vec::new(),
                last_keyframe_request: None,
            },
        );
        let mut subscribers: Vec<ParticipantId> = self.peers.keys().copied().collect();
        subscribers.sort();
        for s in subscribers {
            if self.allowed(s, track) {
                self.subscribe(s, track);
            }
        }
        Some(track)
    }

    /// The publisher stopped sending `track`.
    pub fn handle_track_unpublished(&mut self, _now: Instant, track: TrackId) {
        self.withdraw(track);
    }

    /// The subscriber accepted the renegotiation that carries `track`: media may flow, and a
    /// video subscriber needs a keyframe to start decoding.
    pub fn handle_subscription_active(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        track: TrackId,
    ) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        let Some(pos) = t.pending.iter().position(|p| *p == subscriber) else {
            return;
        };
        t.pending.swap_remove(pos);
        t.active.push(subscriber);
        if t.kind == TrackKind::Video {
            // A new subscriber cannot decode anything before a keyframe: not throttled.
            t.last_keyframe_request = Some(now);
            self.decisions.push_back(Decision::RequestKeyframe {
                publisher: t.publisher,
                track,
            });
        }
    }

    /// A subscriber's media connection came up: whatever was sent to it before was dropped,
    /// so each video it subscribes to needs a keyframe now (not throttled).
    pub fn handle_subscriber_connected(&mut self, now: Instant, subscriber: ParticipantId) {
        let mut tracks: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.kind == TrackKind::Video && t.active.contains(&subscriber))
            .map(|(id, _)| *id)
            .collect();
        tracks.sort();
        for track in tracks {
            if let Some(t) = self.tracks.get_mut(&track) {
                t.last_keyframe_request = Some(now);
                self.decisions.push_back(Decision::RequestKeyframe {
                    publisher: t.publisher,
                    track,
                });
            }
        }
    }

    /// A subscriber asked for a keyframe (PLI/FIR). Only subscribers of the track are heard;
    /// requests closer together than the keyframe interval are merged.
    pub fn handle_keyframe_request(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        track: TrackId,
    ) {
        let is_subscriber = self
            .tracks
            .get(&track)
            .is_some_and(|t| t.active.contains(&subscriber));
        if is_subscriber {
            self.request_keyframe(now, track);
        }
    }

    /// The publisher's stream has a gap the receivers cannot repair (loss beyond NACK).
    pub fn handle_discontinuity(&mut self, now: Instant, track: TrackId) {
        self.request_keyframe(now, track);
    }

    /// The subscribers that receive `track` now (the hot path: no allocation).
    pub fn receivers(&self, track: TrackId) -> &[ParticipantId] {
        self.tracks
            .get(&track)
            .map(|t| t.active.as_slice())
            .unwrap_or(&[])
    }

    /// The next decision for the shell, if any.
    pub fn poll_decision(&mut self) -> Option<Decision> {
        self.decisions.pop_front()
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    fn subscribe(&mut self, subscriber: ParticipantId, track: TrackId) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        t.pending.push(subscriber);
        self.decisions.push_back(Decision::Subscribe {
            subscriber,
            track,
            publisher: t.publisher,
            kind: t.kind,
            source: t.source,
        });
    }

    fn unsubscribe(&mut self, subscriber: ParticipantId, track: TrackId) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        t.active.retain(|p| *p != subscriber);
        t.pending.retain(|p| *p != subscriber);
        self.decisions
            .push_back(Decision::Unsubscribe { subscriber, track });
    }

    fn withdraw(&mut self, track: TrackId) {
        let Some(t) = self.tracks.remove(&track) else {
            return;
        };
        let mut subs: Vec<ParticipantId> = t.active.into_iter().chain(t.pending).collect();
        subs.sort();
        for subscriber in subs {
            if self.peers.contains_key(&subscriber) {
                self.decisions
                    .push_back(Decision::Unsubscribe { subscriber, track });
            }
        }
    }

    fn request_keyframe(&mut self, now: Instant, track: TrackId) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        if t.kind != TrackKind::Video {
            return;
        }
        if let Some(last) = t.last_keyframe_request {
            if now.saturating_duration_since(last) < self.keyframe_interval {
                return;
            }
        }
        t.last_keyframe_request = Some(now);
        self.decisions.push_back(Decision::RequestKeyframe {
            publisher: t.publisher,
            track,
        });
    }
}

#[cfg(test)]
mod tests;
