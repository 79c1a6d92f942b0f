//! `GET /v1/events`: Server-Sent Events. Each event carries its journal id; a client that
//! reconnects with `Last-Event-ID` first gets every event after that id from the journal,
//! then the live ones, with nothing missed and nothing twice.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use super::ApiState;
use super::bus::Published;
use super::error::ApiError;

/// Most events replayed on one reconnection; a client further behind reads the sales list.
const REPLAY_MAX: u32 = 10_000;

type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, Infallible>> + Send>>;

fn sse(p: &Published) -> SseEvent {
    let e = SseEvent::default().event(&p.kind).data(&p.data);
    if p.id > 0 { e.id(p.id.to_string()) } else { e }
}

pub async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Sse<axum::response::sse::KeepAliveStream<EventStream>>, ApiError> {
    let last: Option<i64> = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| {
                    ApiError::field("Last-Event-ID", "the id of the last event received")
                })?,
        ),
    };
    // An id beyond the journal's newest (a client of another journal) would hide every
    // live event: such a client resumes from the newest event there is. Read before
    // subscribing, so what is published meanwhile is replayed or arrives live.
    let newest = s
        .engine
        .journal()
        .last_event_id()
        .map_err(ApiError::internal)?;
    let last = last.map(|id| id.min(newest));
    // Subscribe before reading the backlog, so nothing falls between the two.
    let live = s.bus.subscribe();
    let backlog = match last {
        Some(id) => s
            .engine
            .journal()
            .events_after(id, REPLAY_MAX)
            .map_err(ApiError::internal)?,
        None => Vec::new(),
    };
    // A full page means more may follow that the live stream does not carry: this response
    // ends after the page and the client's reconnect (Last-Event-ID) fetches the next one.
    let more_to_replay = backlog.len() >= REPLAY_MAX as usize;
    let replayed_up_to = backlog.last().map(|(id, _, _)| *id).or(last).unwrap_or(0);
    let backlog = tokio_stream::iter(
        backlog
            .into_iter()
            .map(|(id, kind, data)| Ok(sse(&Published { id, kind, data }))),
    );
    if more_to_replay {
        return Ok(Sse::new(Box::pin(backlog) as EventStream).keep_alive(KeepAlive::default()));
    }
    // A client too slow to keep up is disconnected; it reconnects with Last-Event-ID.
    let live = BroadcastStream::new(live)
        .map(|item| item.ok())
        .take_while(Option::is_some)
        .filter_map(move |p| {
            p.filter(|p| p.id == 0 || p.id > replayed_up_to)
                .map(|p| Ok(sse(&p)))
        });
    Ok(Sse::new(Box::pin(backlog.chain(live)) as EventStream).keep_alive(KeepAlive::default()))
}
