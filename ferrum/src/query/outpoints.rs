//! Where an outpoint stands (protocol 1.7's `blockchain.outpoint.*`): the transaction paying it
//! and the one spending it, each confirmed or in the mempool. The confirmed spender comes from
//! the index's own input rows, so the node needs neither `txindex` nor `txospenderindex`.

use super::{QueryError, Reader};
use crate::daemon::DaemonError;
use crate::mempool::MempoolFunder;
use crate::parse;
use crate::types::{ScriptHash, Txid};

/// An outpoint's status, as ElectrumX 2.0 works it out. A height is a block's, or for a
/// mempool transaction 0 (every input confirmed) or -1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OutpointStatus {
    /// The paying transaction's; `None` when no transaction pays this outpoint (yet).
    pub(crate) funder_height: Option<i64>,
    /// The spending transaction and its height.
    pub(crate) spender: Option<(Txid, i64)>,
}

impl OutpointStatus {
    /// Whether a height in it is a mempool one, which a block can change.
    pub(crate) fn in_mempool(&self) -> bool {
        self.funder_height.is_some_and(|h| h <= 0) || self.spender.is_some_and(|(_, h)| h <= 0)
    }
}

/// An outpoint's status, and the script of the output once a transaction paying it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outpoint {
    pub(crate) status: OutpointStatus,
    pub(crate) script: Option<ScriptHash>,
}

impl Reader {
    /// The status of output `vout` of `txid`: confirmed first; unless its spend is confirmed
    /// too, what the mempool knows takes precedence (a transaction both just mined and still
    /// in the mempool's last sync shows as the mempool has it, until the next sync).
    pub(crate) async fn outpoint(&self, txid: Txid, vout: u32) -> Result<Outpoint, QueryError> {
        let mut confirmed = OutpointStatus::default();
        let mut script = None;
        if let Some((height, pos, _)) = self.tx_position(txid).await? {
            let bytes = self.confirmed_tx(&txid, height, pos).await?;
            let tx = parse::parse_tx_bytes(&bytes).map_err(|e| unparsable(&txid, e))?;
            if let Some(out) = tx.outputs.get(vout as usize) {
                confirmed.funder_height = Some(i64::from(height));
                if !out.is_op_return() {
                    let sh = ScriptHash::of_script(out.script);
                    script = Some(sh);
                    confirmed.spender = self.confirmed_spender(sh, txid, vout).await?;
                }
            }
        }
        if confirmed.spender.is_some() {
            return Ok(Outpoint { status: confirmed, script });
        }
        let pool = self.mempool.outpoint(&txid, vout);
        let height = |unconfirmed_inputs: bool| -i64::from(unconfirmed_inputs);
        let (funder, spender) = match pool.funder {
            // A mempool transaction without that output: nothing the mempool says counts.
            Some(MempoolFunder { output: None, .. }) => (None, None),
            Some(f) => {
                script = script.or(f.output.flatten());
                (Some(height(f.has_unconfirmed_inputs)), pool.spender.map(|(t, u)| (t, height(u))))
            }
            None => (None, pool.spender.map(|(t, u)| (t, height(u)))),
        };
        let status = OutpointStatus {
            funder_height: funder.or(confirmed.funder_height),
            spender: spender.or(confirmed.spender),
        };
        Ok(Outpoint { status, script })
    }

    /// The confirmed transaction spending output `vout` of `txid`, an output of script `sh`,
    /// and its height.
    async fn confirmed_spender(
        &self,
        sh: ScriptHash,
        txid: Txid,
        vout: u32,
    ) -> Result<Option<(Txid, i64)>, QueryError> {
        let (spends, shared) = self.blocking(move |q| q.spends_of(&sh, &txid, vout)).await?;
        for spend in spends {
            if shared {
                // Another output of the script has the same reference: the spending
                // transaction's input names the full txid.
                let bytes = self.raw_tx(spend.txid).await?;
                let tx = parse::parse_tx_bytes(&bytes).map_err(|e| unparsable(&spend.txid, e))?;
                let input = tx.inputs.get(spend.input as usize);
                if !input.is_some_and(|i| i.prev_txid() == txid && i.prev_vout == vout) {
                    continue;
                }
            }
            return Ok(Some((spend.txid, i64::from(spend.height))));
        }
        Ok(None)
    }
}

fn unparsable(txid: &Txid, e: parse::ParseError) -> QueryError {
    QueryError::Daemon(DaemonError::Protocol(format!("transaction {txid} from the node does not parse: {e}")))
}
