//! LFW protocol.
