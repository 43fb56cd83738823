//! One participant's WebRTC session inside the engine: the `str0m::Rtc` plus the bookkeeping
//! that maps its `mid`s to the forwarder's tracks and drives server-side renegotiation.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use bedside_proto::{ParticipantId, Role, Source, TrackInfo, TrackKind, VisitType};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::Rtc;
use tokio::sync::mpsc;

use crate::core::TrackId;
use crate::engine::PeerEvent;

/// A track this peer should send to its client, and how far its negotiation has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutState {
    /// Waiting for the next server offer.
    ToOpen,
    /// In the offer that awaits the client's answer.
    Negotiating(Mid),
    /// Negotiated: media flows.
    Open(Mid),
    /// To be removed in the next server offer.
    ToStop(Mid),
    /// Removal offered, awaiting the answer.
    NegotiatingStop(Mid),
}

#[derive(Debug)]
pub(crate) struct OutTrack {
    pub(crate) track: TrackId,
    pub(crate) publisher: ParticipantId,
    pub(crate) kind: TrackKind,
    pub(crate) source: Source,
    pub(crate) state: OutState,
    /// The publisher left while this track was being negotiated: stop it after the answer.
    pub(crate) withdrawn: bool,
}

pub(crate) struct Peer {
    pub(crate) rtc: Rtc,
    pub(crate) role: Role,
    pub(crate) visit_type: VisitType,
    /// The source of each mid the client sends, from its latest offer.
    pub(crate) sources: HashMap<String, Source>,
    pub(crate) events: mpsc::UnboundedSender<PeerEvent>,
    /// The client's own tracks, by the mid of the client's offer.
    pub(crate) tracks_in: HashMap<Mid, TrackId>,
    pub(crate) tracks_out: Vec<OutTrack>,
    /// Open outgoing tracks by track id (the forwarding hot path).
    pub(crate) out_mid: HashMap<TrackId, Mid>,
    pub(crate) pending_offer: Option<SdpPendingOffer>,
    /// Server offers may be sent once the client's first offer has been answered.
    pub(crate) negotiation_ready: bool,
    pub(crate) next_timeout: Instant,
    pub(crate) connected: bool,
    /// Every remote candidate this session gave (trickled or in an offer), as its text: at
    /// most `MAX_REMOTE_CANDIDATES` of them, each at most `MAX_CANDIDATE_BYTES`.
    pub(crate) remote_candidates: HashSet<Box<str>>,
    pub(crate) stats: super::stats::PeerStatsState,
}

impl Peer {
    pub(crate) fn new(rtc: Rtc, events: mpsc::UnboundedSender<PeerEvent>, now: Instant) -> Self {
        Peer {
            rtc,
            role: Role::Patient,
            visit_type: VisitType::Consult,
            sources: HashMap::new(),
            events,
            tracks_in: HashMap::new(),
            tracks_out: Vec::new(),
            out_mid: HashMap::new(),
            pending_offer: None,
            negotiation_ready: false,
            next_timeout: now,
            connected: false,
            remote_candidates: HashSet::new(),
            stats: Default::default(),
        }
    }

    pub(crate) fn add_out_track(
        &mut self,
        track: TrackId,
        publisher: ParticipantId,
        kind: TrackKind,
        source: Source,
    ) {
        self.tracks_out.push(OutTrack {
            track,
            publisher,
            kind,
            source,
            state: OutState::ToOpen,
            withdrawn: false,
        });
    }

    pub(crate) fn remove_out_track(&mut self, track: TrackId) {
        self.out_mid.remove(&track);
        let Some(pos) = self.tracks_out.iter().position(|t| t.track == track) else {
            return;
        };
        let t = &mut self.tracks_out[pos];
        match t.state {
            OutState::ToOpen => {
                self.tracks_out.remove(pos);
            }
            OutState::Negotiating(_) => t.withdrawn = true,
            OutState::Open(mid) => t.state = OutState::ToStop(mid),
            OutState::ToStop(_) | OutState::NegotiatingStop(_) => {}
        }
    }

    /// Builds and sends a server offer if tracks wait to be added or removed and no other
    /// offer is outstanding. Returns whether an offer went out.
    pub(crate) fn negotiate_if_needed(&mut self) -> bool {
        if !self.negotiation_ready || self.pending_offer.is_some() {
            return false;
        }
        let needs = self
            .tracks_out
            .iter()
            .any(|t| matches!(t.state, OutState::ToOpen | OutState::ToStop(_)));
        if !needs {
            return false;
        }
        let mut change = self.rtc.sdp_api();
        for t in &mut self.tracks_out {
            match t.state {
                OutState::ToOpen => {
                    let kind = match t.kind {
                        TrackKind::Audio => MediaKind::Audio,
                        TrackKind::Video => MediaKind::Video,
                    };
                    let stream = t.publisher.to_string();
                    let mid = change.add_media(kind, Direction::SendOnly, Some(stream), None, None);
                    t.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    t.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let Some((offer, pending)) = change.apply() else {
            return false;
        };
        self.pending_offer = Some(pending);
        let tracks = self.track_infos();
        let _ = self.events.send(PeerEvent::Offer {
            sdp: offer.to_sdp_string(),
            tracks,
        });
        true
    }

    /// Applies the client's answer to the outstanding server offer. Returns the tracks that
    /// became open.
    pub(crate) fn accept_answer(
        &mut self,
        answer: SdpAnswer,
    ) -> Result<Vec<TrackId>, str0m::RtcError> {
        let Some(pending) = self.pending_offer.take() else {
            return Ok(Vec::new());
        };
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        let mut opened = Vec::new();
        for t in &mut self.tracks_out {
            if let OutState::Negotiating(mid) = t.state {
                if t.withdrawn {
                    t.state = OutState::ToStop(mid);
                } else {
                    t.state = OutState::Open(mid);
                    self.out_mid.insert(t.track, mid);
                    opened.push(t.track);
                }
            }
        }
        self.tracks_out
            .retain(|t| !matches!(t.state, OutState::NegotiatingStop(_)));
        Ok(opened)
    }

    /// The track a sending mid carries, for routing the client's keyframe requests.
    pub(crate) fn track_for_out_mid(&self, mid: Mid) -> Option<TrackId> {
        self.tracks_out.iter().find_map(|t| match t.state {
            OutState::Open(m) if m == mid => Some(t.track),
            _ => None,
        })
    }

    fn track_infos(&self) -> Vec<TrackInfo> {
        self.tracks_out
            .iter()
            .filter_map(|t| match t.state {
                OutState::Negotiating(mid) | OutState::Open(mid) => Some(TrackInfo {
                    mid: mid.to_string(),
                    participant: t.publisher,
                    kind: t.kind,
                    source: t.source,
                }),
                _ => None,
            })
            .collect()
    }
}
