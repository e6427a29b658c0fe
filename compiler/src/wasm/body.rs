//! A function body under construction: the instruction bytes and the depth of the
//! structured-control nesting, so that branches can name their target by the depth
//! at which it was opened rather than by a hand-counted relative index.

use wasm_encoder::{BlockType, InstructionSink, MemArg};

/// A label: the nesting depth just inside the block, loop or if that defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Label(u32);

#[derive(Debug, Default)]
pub(super) struct Body {
    bytes: Vec<u8>,
    depth: u32,
}

/// Every load and store of the generated code is one aligned-or-not 64-bit word at the
/// dynamic address (the alignment is a hint; unaligned accesses are still correct).
pub(super) const WORD: MemArg = MemArg {
    offset: 0,
    align: 3,
    memory_index: 0,
};

impl Body {
    /// The instruction encoder. Structured control goes through the methods below so
    /// the depth stays right.
    pub(super) fn i(&mut self) -> InstructionSink<'_> {
        InstructionSink::new(&mut self.bytes)
    }

    pub(super) fn block(&mut self, bt: BlockType) -> Label {
        self.i().block(bt);
        self.depth += 1;
        Label(self.depth)
    }

    pub(super) fn loop_(&mut self, bt: BlockType) -> Label {
        self.i().loop_(bt);
        self.depth += 1;
        Label(self.depth)
    }

    pub(super) fn if_(&mut self, bt: BlockType) -> Label {
        self.i().if_(bt);
        self.depth += 1;
        Label(self.depth)
    }

    pub(super) fn else_(&mut self) {
        self.i().else_();
    }

    pub(super) fn end(&mut self) {
        self.i().end();
        self.depth = self.depth.saturating_sub(1);
    }

    fn relative(&self, label: Label) -> u32 {
        self.depth.saturating_sub(label.0)
    }

    pub(super) fn br(&mut self, label: Label) {
        let relative = self.relative(label);
        self.i().br(relative);
    }

    pub(super) fn br_if(&mut self, label: Label) {
        let relative = self.relative(label);
        self.i().br_if(relative);
    }

    /// The finished instructions, closed with the function's `end`.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.i().end();
        self.bytes
    }
}
