//! Member bindings' upkeep: access tokens that expire within `[members] refresh_before_s`
//! are refreshed with their refresh token (`api/members.rs`), looked for every
//! `refresh_check_s` on the housekeeping tick; tokens sealed under an earlier token key are
//! resealed under the current one on the same tick, and auth codes left `exchanging` (an
//! unclear answer, a crash) are sent again: the first tick is at the start.

use std::sync::Arc;

use tokio::time::Instant;

use crate::api::members::Members;

pub(super) struct MemberRefresh {
    members: Arc<Members>,
    next: Instant,
}

impl MemberRefresh {
    pub(super) fn new(members: Arc<Members>) -> MemberRefresh {
        MemberRefresh {
            members,
            next: Instant::now(),
        }
    }

    pub(super) async fn tick(&mut self) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + self.members.config.refresh_every;
        self.members.retry_exchanges().await;
        self.members.reseal_rotated();
        self.members.refresh_due().await;
    }
}
