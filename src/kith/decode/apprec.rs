//! AppRec 1.0 / 1.1 (FACTS §5).

use super::common::{code_of, dcodes, hcp, s, Notes};
use crate::finding::Severity;
use crate::kith::detect::Detected;
use crate::model::{Body, Header, Receipt, ReceiptStatus};
use crate::xml::Element;

/// The AppRec header: `Sender/HCP` (the party that received the business message) and
/// `Receiver/HCP` (its original sender).
pub(crate) fn header(root: &Element, format: crate::model::Format, fellesformat: bool) -> Header {
    Header {
        msg_type: root.v_at("MsgType").unwrap_or("APPREC").to_string(),
        msg_type_text: root
            .at("MsgType")
            .and_then(|t| t.attr("DN"))
            .map(|d| d.trim().to_string()),
        msg_id: s(root, "Id"),
        gen_date: s(root, "GenDate"),
        sender: root.at("Sender/HCP").map(|h| hcp(h).0),
        receiver: root.at("Receiver/HCP").map(|h| hcp(h).0),
        fellesformat,
        ..Header::new(format, "")
    }
}

pub(crate) fn decode(d: &Detected<'_>, notes: &mut Notes) -> (Header, Body) {
    let root = d.root;
    let header = header(root, d.format, d.fellesformat);
    let status = match root.v_at("Status").and_then(ReceiptStatus::from_code) {
        Some(st) => st,
        None => {
            notes.note(
                dcodes::APPREC_STATUS_UNKNOWN,
                Severity::Warning,
                "/AppRec/Status",
                "AppRec Status is missing or not an 8258 code (1, 2, 3); read as rejected",
            );
            ReceiptStatus::Rejected
        }
    };
    let receipt = Receipt {
        status,
        errors: root.children_named("Error").filter_map(code_of).collect(),
        original_msg_id: s(root, "OriginalMsgId/Id"),
        original_msg_type: root.v_at("OriginalMsgId/MsgType").map(str::to_string),
        original_issue_date: s(root, "OriginalMsgId/IssueDate"),
    };
    (header, Body::Receipt(Box::new(receipt)))
}
