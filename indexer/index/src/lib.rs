//! Indexer: SIP dialogs into calls, media correlation, RTP quality, SQLite call index
#![deny(unsafe_code)]
