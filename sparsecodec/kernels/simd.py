"""Vector kernels written as LLVM IR: the inner loops of ``float_ans`` coding and decoding.

LLVM's cost model does not vectorize table lookups (gathers) on every x86 target (on AMD Zen
it never does), and numba has no vector types, so these loops are emitted here as explicit
vector IR through :func:`numba.extending.intrinsic`: ``llvm.masked.gather`` for the table
lookups, ``llvm.masked.expandload`` for the words a group of rANS states reads, and
``llvm.experimental.vector.compress`` plus a masked store for the words it writes (not
``llvm.masked.compressstore``: a compressing store to memory is microcoded on AMD Zen 4, and
made the encoder 3x slower). Where :data:`VECTOR` holds, two x86 intrinsics move lanes inside
registers (an expand, a two-table permute); elsewhere the same steps go through the stack.
The backend lowers the generic intrinsics to AVX-512 instructions where the CPU has them and
emulates them one lane at a time elsewhere (always correct, slower than the scalar loops:
:data:`VECTOR` says whether to use them). They are called from numba functions whose scalar
loops finish what a vector loop leaves (see :mod:`kernels.floats`).

``rans_lanes_32`` and ``rans_lanes_64``: 32 or 64 interleaved rANS states (entry k uses state
k % lanes), as two or four vectors of ``WIDTH`` 32-bit states. One step of a vector: the slot
of each state (its low ``scale`` bits); ``fb[slot]`` = freq | (slot - cum) << 16; the new
state freq * (x >> scale) + (slot - cum); the states that fell below 2^16 read the next words
of the stream in lane order (an expanding load) and shift them in. It writes the slots, not
the symbols (the value pass looks the symbol's value up by slot), and counts the zero
classes'. ``rans_encode_32`` and ``rans_encode_64`` are their encoders.

``float_values``: the values of a block without zeros, 16 entries of a row at a time: the
slot's value ``vslot[slot]`` (its key << L), plus its octave ((r + c[j] + 2) >> 2) << P, and
the tails of ``w`` bits from ``WIDTH`` lanes of 32-bit words (16 consecutive entries share a
word row and a shift: two loads); stored as 32- or 16-bit patterns, with the OR of the heads
returned for the range check. ``float_values_zeros``: the same for a block with zeros, whose
nonzero entries take the tails in order (the 16 tails from the rank of the vector's first
one, taken from two lane groups, expanded into the nonzero lanes). ``pack_tail_groups``
writes the tails of a block without zeros, 16 at a time. ``segment_keys``: the encoder's key
of every entry of a row segment, 16 at a time.
"""
from __future__ import annotations

import numba
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

WIDTH = 16  # 32-bit lanes per vector (one AVX-512 register)
STATES = (32, 64)  # rANS states a block may have: vectors of WIDTH stepped together, whose
# latencies overlap (two vectors; four on large matrices, at 128 more flushed bytes a block)
NEEDS = ("avx512f", "avx512bw", "avx512vl", "avx512vbmi2")  # gathers, 16-bit expand/compress


def vector_cpu() -> bool:
    """Whether the vector loops pay on this machine: numba compiles for the host CPU (no
    NUMBA_CPU_NAME other than "host") and the host has AVX-512 with 16-bit expanding loads
    (VBMI2). Elsewhere the backend would emulate the gathers and expanding loads one lane at
    a time, slower than the scalar loops; the kernels take this as an argument."""
    if numba.config.CPU_NAME not in (None, "host"):
        return False
    features = binding.get_host_cpu_features()
    return all(features.get(f, False) for f in NEEDS)


VECTOR = vector_cpu()

_I1, _I8, _I16, _I32, _I64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))
_V1 = ir.VectorType(_I1, WIDTH)
_V8 = ir.VectorType(_I8, WIDTH)
_V16 = ir.VectorType(_I16, WIDTH)
_V32 = ir.VectorType(_I32, WIDTH)
_VPTR = ir.VectorType(ir.PointerType(_I32), WIDTH)


def _const(ty, v):
    return ir.Constant(ty, [v] * ty.count)


def _splat(builder, val, ty):
    undef = ir.Constant(ty, ir.Undefined)
    one = builder.insert_element(undef, val, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(_I32, ty.count),
                                                          [0] * ty.count))


def _call(builder, name, ret, args):
    fnty = ir.FunctionType(ret, [a.type for a in args])
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), args)


def _gather(builder, base, idx):
    """base[idx] for a vector of 32-bit indices (below 2^31) into 32-bit elements: a
    getelementptr with a vector of indices, which the backend turns into one gather with
    32-bit offsets."""
    ptrs = builder.gep(base, [idx], source_etype=_I32)
    ptrs.type = _VPTR  # llvmlite types a gep by its pointer; a vector index makes a vector
    return _call(builder, f"llvm.masked.gather.v{WIDTH}i32.v{WIDTH}p0", _V32,
                 [ptrs, ir.Constant(_I32, 4), _const(_V1, 1), _const(_V32, 0)])


def _masked_load(builder, ptr, index, ty, live):
    """ptr[index:index + WIDTH] as a vector ``ty``, lanes not ``live`` 0 (and not read)."""
    bits = ty.element.width
    src = builder.bitcast(builder.gep(ptr, [index]), ir.PointerType(ty))
    return _call(builder, f"llvm.masked.load.v{WIDTH}i{bits}.p0", ty,
                 [src, ir.Constant(_I32, bits // 8), live, ir.Constant(ty, [0] * WIDTH)])


def _masked_store(builder, value, ptr, index, live):
    """The ``live`` lanes of ``value`` to ptr[index:index + WIDTH] (others not written)."""
    bits = value.type.element.width
    dst = builder.bitcast(builder.gep(ptr, [index]), ir.PointerType(value.type))
    _call(builder, f"llvm.masked.store.v{WIDTH}i{bits}.p0", ir.VoidType(),
          [value, dst, ir.Constant(_I32, bits // 8), live])


def _popcount(builder, mask):
    """The set lanes of a ``WIDTH``-lane mask, as an int64."""
    count = _call(builder, f"llvm.ctpop.i{WIDTH}", ir.IntType(WIDTH),
                  [builder.bitcast(mask, ir.IntType(WIDTH))])
    return builder.zext(count, _I64)


def _live(builder, left):
    """The mask of the lanes below ``left`` (int64): a row's last, partial vector."""
    return builder.icmp_signed("<", ir.Constant(_V32, list(range(WIDTH))),
                               _splat(builder, builder.trunc(left, _I32), _V32))


def _compress_store(builder, value, ptr, index, live, count):
    """The ``live`` lanes of ``value`` (``count`` of them) to ptr[index:index + count], in
    lane order: packed in the register, then a masked store of the first ``count`` lanes.
    (``llvm.masked.compressstore`` becomes a compressing store to memory, which costs about
    a hundred cycles on AMD Zen 4: the encoder's vector loop ran 3x slower with it.)"""
    packed = _call(builder, f"llvm.experimental.vector.compress.v{WIDTH}i16", value.type,
                   [value, live, ir.Constant(value.type, ir.Undefined)])
    first = builder.trunc(builder.sub(builder.shl(ir.Constant(_I32, 1),
                                                  builder.trunc(count, _I32)),
                                      ir.Constant(_I32, 1)), ir.IntType(WIDTH))
    _masked_store(builder, packed, ptr, index, builder.bitcast(first, _V1))


def _expand(builder, value, live):
    """The first lanes of ``value`` moved to the ``live`` lanes, in order (others 0): a
    register expand where the CPU has one (VBMI2 for 16-bit lanes); elsewhere through a
    stack slot and ``llvm.masked.expandload``, which the backend emulates."""
    ty = value.type
    if VECTOR:
        return _call(builder, f"llvm.x86.avx512.mask.expand.v{WIDTH}i{ty.element.width}", ty,
                     [value, ir.Constant(ty, [0] * WIDTH), live])
    slot = cgutils.alloca_once(builder, ty)
    builder.store(value, slot)
    return _call(builder, f"llvm.masked.expandload.v{WIDTH}i{ty.element.width}", ty,
                 [builder.bitcast(slot, ir.PointerType(ty.element)), live,
                  ir.Constant(ty, [0] * WIDTH)])


def _window(builder, lo, hi, shift, scratch):
    """Lanes shift .. shift + WIDTH of the 32-bit vectors lo, hi put end to end: one
    two-table permute where the CPU has it, else through ``scratch`` (2 * WIDTH i32)."""
    if VECTOR:
        idx = builder.add(ir.Constant(_V32, list(range(WIDTH))),
                          _splat(builder, builder.trunc(shift, _I32), _V32))
        return _call(builder, f"llvm.x86.avx512.vpermi2var.d.{32 * WIDTH}", _V32,
                     [lo, idx, hi])
    _vstore(builder, lo, scratch, ir.Constant(_I64, 0), 4)
    _vstore(builder, hi, scratch, ir.Constant(_I64, WIDTH), 4)
    return _vload(builder, scratch, shift, _V32, 4)


def _vload(builder, ptr, index, ty, align):
    return builder.load(builder.bitcast(builder.gep(ptr, [index]), ir.PointerType(ty)),
                        align=align)


def _vstore(builder, value, ptr, index, align):
    builder.store(value, builder.bitcast(builder.gep(ptr, [index]),
                                         ir.PointerType(value.type)), align=align)


def _new_blocks(builder, *names):
    return [builder.append_basic_block(name) for name in names]


def _loop(builder):
    """(pre, head, body, done): the blocks of a loop; the caller adds the phis to head."""
    head = builder.append_basic_block("head")
    body = builder.append_basic_block("body")
    done = builder.append_basic_block("done")
    pre = builder.block
    builder.branch(head)
    builder.position_at_end(head)
    return pre, head, body, done


def _close(builder, pre, body, head, done, phis):
    """Give each (phi, value on entry, value after the body) its incomings, branch back to
    the loop's head and go on after it."""
    for phi, first, after in phis:
        phi.add_incoming(first, pre)
        phi.add_incoming(after, body)
    builder.branch(head)
    builder.position_at_end(done)


def _states_in(builder, stptr, vectors):
    return [_vload(builder, stptr, ir.Constant(_I64, WIDTH * v), _V32, 4)
            for v in range(vectors)]


def _states_out(builder, stptr, xs, ioptr, values):
    """Store the state vectors and ``values`` to io[0], io[1], ..."""
    for v, x in enumerate(xs):
        _vstore(builder, x, stptr, ir.Constant(_I64, WIDTH * v), 4)
    for i, value in enumerate(values):
        builder.store(value, builder.gep(ioptr, [ir.Constant(_I64, i)]))


def _i64(context, builder, val, ty):
    return context.cast(builder, val, ty, types.int64)


def _rans_lanes(vectors):
    """The loop below for ``vectors`` vectors of ``WIDTH`` states."""
    lanes = WIDTH * vectors

    def rans_lanes(typingctx, words, fb, states, slots, io, kend, scale, zend):
        """Step all ``lanes`` states (uint32 ``states``) over the uint16 ``words`` from
        io = [p, k, zeros] (k a multiple of lanes) while k + lanes <= kend and p + lanes <= the
        words' count, writing entry k's slot to slots[k] (uint16) and adding the slots below
        ``zend`` (the zero classes') to io[2]. Updates ``states`` and ``io``."""
        sig = types.void(words, fb, states, slots, io, kend, scale, zend)

        def codegen(context, builder, signature, args):
            wa, fba, sta, sla, ioa, kend_, sc, zend_ = args
            tys = signature.args
            wary = context.make_array(tys[0])(context, builder, wa)
            wptr = wary.data
            nwords = builder.extract_value(wary.shape, 0)
            fbptr = context.make_array(tys[1])(context, builder, fba).data
            stptr = context.make_array(tys[2])(context, builder, sta).data
            slptr = context.make_array(tys[3])(context, builder, sla).data
            ioptr = context.make_array(tys[4])(context, builder, ioa).data
            kend_ = _i64(context, builder, kend_, tys[5])
            sc32 = builder.trunc(_i64(context, builder, sc, tys[6]), _I32)
            maskv = _splat(builder, builder.sub(builder.shl(ir.Constant(_I32, 1), sc32),
                                                ir.Constant(_I32, 1)), _V32)
            scv = _splat(builder, sc32, _V32)
            zendv = _splat(builder, builder.trunc(_i64(context, builder, zend_, tys[7]), _I32),
                           _V32)
            p0 = builder.load(ioptr)
            z0 = builder.load(builder.gep(ioptr, [ir.Constant(_I64, 2)]))
            k0 = builder.load(builder.gep(ioptr, [ir.Constant(_I64, 1)]))
            x0 = _states_in(builder, stptr, vectors)
            pre, head, body, done = _loop(builder)
            k = builder.phi(_I64)
            p = builder.phi(_I64)
            z = builder.phi(_I64)
            xs = [builder.phi(_V32) for _ in range(vectors)]
            step = ir.Constant(_I64, lanes)
            more = builder.and_(
                builder.icmp_signed("<=", builder.add(k, step), kend_),
                builder.icmp_signed("<=", builder.add(p, step), nwords))
            builder.cbranch(more, body, done)
            builder.position_at_end(body)
            pn = p
            zn = z
            xn = []
            for v in range(vectors):
                x = xs[v]
                slot = builder.and_(x, maskv)
                zn = builder.add(zn, _popcount(builder, builder.icmp_unsigned("<", slot, zendv)))
                f = _gather(builder, fbptr, slot)
                x = builder.add(builder.mul(builder.and_(f, _const(_V32, 0xFFFF)),
                                            builder.lshr(x, scv)),
                                builder.lshr(f, _const(_V32, 16)))
                need = builder.icmp_unsigned("<", x, _const(_V32, 1 << 16))
                w = _call(builder, f"llvm.masked.expandload.v{WIDTH}i16", _V16,
                          [builder.gep(wptr, [pn]), need, _const(_V16, 0)])
                x = builder.select(need, builder.or_(builder.shl(x, _const(_V32, 16)),
                                                     builder.zext(w, _V32)), x)
                xn.append(x)
                pn = builder.add(pn, _popcount(builder, need))
                _vstore(builder, builder.trunc(slot, _V16), slptr,
                        builder.add(k, ir.Constant(_I64, WIDTH * v)), 2)
            _close(builder, pre, body, head, done,
                   [(k, k0, builder.add(k, step)), (p, p0, pn), (z, z0, zn),
                    *zip(xs, x0, xn, strict=True)])
            _states_out(builder, stptr, xs, ioptr, [p, k, z])
            return context.get_dummy_value()

        return sig, codegen

    return intrinsic(rans_lanes)


rans_lanes_32, rans_lanes_64 = _rans_lanes(2), _rans_lanes(4)


def _values_codegen(out_bits, zeros):
    """The code of :func:`float_values` (``zeros`` False) or :func:`float_values_zeros`."""

    def codegen(context, builder, signature, args):
        tys = signature.args
        slptr, vsptr, rptr, cptr, tptr, optr = (
            context.make_array(tys[i])(context, builder, args[i]).data
            for i in (0, 1, 2, 3, 7, 13))
        c0_, n_, width_, base_, o0_, rs_ = (_i64(context, builder, args[i], tys[i])
                                           for i in (4, 5, 6, 8, 14, 15))
        w_, L_, P_, top_ = (builder.trunc(_i64(context, builder, args[i], tys[i]), _I32)
                            for i in (9, 10, 11, 12))
        one = ir.Constant(_I32, 1)
        wmask = _splat(builder, builder.sub(builder.shl(one, w_), one), _V32)
        Lv = _splat(builder, L_, _V32)
        lowmask = _splat(builder, builder.sub(builder.shl(one, L_), one), _V32)
        Pv = _splat(builder, P_, _V32)
        topv = _splat(builder, top_, _V32)
        w64 = builder.zext(w_, _I64)
        zero64 = ir.Constant(_I64, 0)
        lanes64 = ir.Constant(_I64, WIDTH)
        tblock = builder.gep(tptr, [base_])
        if zeros:
            zend = _splat(builder, builder.trunc(_i64(context, builder, args[16], tys[16]),
                                                 _I32), _V32)
            zplus = _splat(builder, builder.trunc(_i64(context, builder, args[17], tys[17]),
                                                  _I32), _V32)
            ioptr = context.make_array(tys[18])(context, builder, args[18]).data
            # the last row a group's two word rows may start at: the tails' end less two rows
            nwords = builder.extract_value(
                context.make_array(tys[7])(context, builder, args[7]).shape, 0)
            qmax = builder.sub(builder.sub(nwords, base_), ir.Constant(_I64, 2 * WIDTH))
            pair = cgutils.alloca_once(builder, ir.ArrayType(_I32, 2 * WIDTH))
            pair0 = builder.bitcast(pair, ir.PointerType(_I32))

        def group(g):
            """The tails of group g (a vector in lane order): two loads, one shift."""
            at = builder.mul(g, w64)
            q = builder.mul(builder.lshr(at, ir.Constant(_I64, 5)), lanes64)
            if zeros:  # a rank past the block's tails reads inside the array
                q = builder.select(builder.icmp_signed(">", q, qmax), qmax, q)
            lo = _vload(builder, tblock, q, _V32, 4)
            hi = _vload(builder, tblock, builder.add(q, lanes64), _V32, 4)
            off = _splat(builder, builder.trunc(builder.and_(at, ir.Constant(_I64, 31)), _I32),
                         _V32)
            return builder.and_(builder.or_(
                builder.lshr(lo, off),
                builder.shl(builder.shl(hi, _const(_V32, 1)),
                            builder.sub(_const(_V32, 31), off))), wmask)

        pre = builder.block
        rhead, rbody, chead, cbody, rnext, done = _new_blocks(
            builder, "rows", "row", "vectors", "vector", "next_row", "done")
        builder.branch(rhead)
        builder.position_at_end(rhead)
        i = builder.phi(_I64)
        mags_r = builder.phi(_V32)
        rank_r = builder.phi(_I64)
        builder.cbranch(builder.icmp_signed("<", i, n_), rbody, done)
        builder.position_at_end(rbody)
        riv = _splat(builder, builder.add(builder.sext(builder.load(builder.gep(rptr, [i])),
                                                       _I32), ir.Constant(_I32, 2)), _V32)
        krow = builder.mul(i, width_)  # the row's first entry in the block
        orow = builder.add(o0_, builder.mul(i, rs_))
        builder.branch(chead)
        builder.position_at_end(chead)
        jj = builder.phi(_I64)
        mags = builder.phi(_V32)
        rank = builder.phi(_I64)  # the tails before this vector's entries
        builder.cbranch(builder.icmp_signed("<", jj, width_), cbody, rnext)
        builder.position_at_end(cbody)
        k = builder.add(krow, jj)
        if zeros:  # any width: the row's last vector is masked
            live = _live(builder, builder.sub(width_, jj))
            slot = builder.zext(_masked_load(builder, slptr, k, _V16, live), _V32)
            col = builder.sext(_masked_load(builder, cptr, builder.add(c0_, jj), _V8, live),
                               _V32)
        else:
            slot = builder.zext(_vload(builder, slptr, k, _V16, 2), _V32)
            col = builder.sext(_vload(builder, cptr, builder.add(c0_, jj), _V8, 1), _V32)
        hv = _gather(builder, vsptr, slot)
        hv = builder.add(hv, builder.shl(builder.ashr(builder.add(riv, col), _const(_V32, 2)),
                                         Pv))
        if not zeros:  # entry k has tail k: this vector's tails are one group's
            tl = group(builder.udiv(k, lanes64))
            rank_n = rank
        else:
            # the nonzero entries take the next tails in order: the 16 tails from the rank
            # (the end of one group, the start of the next: both stored, read at the rank's
            # lane), expanded into the nonzero lanes
            nz = builder.and_(builder.icmp_unsigned(">=", slot, zend), live)
            g = builder.udiv(rank, lanes64)
            tl = _expand(builder, _window(builder, group(g),
                                          group(builder.add(g, ir.Constant(_I64, 1))),
                                          builder.urem(rank, lanes64), pair0), nz)
            rank_n = builder.add(rank, _popcount(builder, nz))
        val = builder.or_(builder.or_(hv, builder.and_(tl, lowmask)),
                          builder.shl(builder.lshr(tl, Lv), topv))
        if zeros:  # a zero class: its sign (the second class is -0.0), no head
            hv = builder.select(nz, hv, _const(_V32, 0))
            sign = builder.zext(builder.icmp_unsigned(">=", slot, zplus), _V32)
            val = builder.select(nz, val, builder.shl(sign, topv))
        if out_bits == 16:
            val = builder.trunc(val, _V16)
        if zeros:
            _masked_store(builder, val, optr, builder.add(orow, jj), live)
        else:
            _vstore(builder, val, optr, builder.add(orow, jj), out_bits // 8)
        mags_n = builder.or_(mags, hv)
        jj.add_incoming(zero64, rbody)
        jj.add_incoming(builder.add(jj, lanes64), cbody)
        mags.add_incoming(mags_r, rbody)
        mags.add_incoming(mags_n, cbody)
        rank.add_incoming(rank_r, rbody)
        rank.add_incoming(rank_n, cbody)
        builder.branch(chead)
        builder.position_at_end(rnext)
        i.add_incoming(zero64, pre)
        i.add_incoming(builder.add(i, ir.Constant(_I64, 1)), rnext)
        mags_r.add_incoming(_const(_V32, 0), pre)
        mags_r.add_incoming(mags, rnext)
        rank_r.add_incoming(zero64, pre)
        rank_r.add_incoming(rank, rnext)
        builder.branch(rhead)
        builder.position_at_end(done)
        if zeros:
            builder.store(rank_r, ioptr)
        return _call(builder, f"llvm.vector.reduce.or.v{WIDTH}i32", _I32, [mags_r])

    return codegen


@intrinsic
def float_values(typingctx, slots, vslot, r, c, c0, n, width, tails, base, w, L, P, top, out,
                 o0, rs):
    """The values of a block without zeros whose width is a multiple of ``WIDTH``: its ``n``
    x ``width`` entries, row by row, whose columns start at c0, entry (i, jj) to
    out[o0 + i * rs + jj] (uint32 or uint16): vslot[slot] + (((r[i] + 2 + c[c0 + jj]) >> 2)
    << P) | the tail's low L bits | its sign << top. The tails are in ``WIDTH`` lanes of
    32-bit words from tails[base] (entry k in lane k % WIDTH, at bit (k // WIDTH) * w of the
    lane; word q of a lane at tails[base + q * WIDTH + lane]), so a vector of entries reads
    its tails with two loads and one shift. Returns the OR of the heads (uint32)."""
    sig = types.uint32(slots, vslot, r, c, c0, n, width, tails, base, w, L, P, top, out, o0, rs)
    return sig, _values_codegen(out.dtype.bitwidth, False)


@intrinsic
def float_values_zeros(typingctx, slots, vslot, r, c, c0, n, width, tails, base, w, L, P, top,
                       out, o0, rs, zend, zplus, io):
    """:func:`float_values` for a block of any width that may hold zero classes (the slots
    below ``zend``; those from ``zplus`` on are -0.0): a zero is its sign bit, and the nonzero
    entries take the tails in order, so a vector reads the 16 tails from its first one's rank
    (from two groups) and expands them into its nonzero lanes; the last vector of a row is
    masked. io[0] = the tails read. Returns the OR of the heads of the nonzero entries
    (uint32)."""
    sig = types.uint32(slots, vslot, r, c, c0, n, width, tails, base, w, L, P, top, out, o0, rs,
                       zend, zplus, io)
    return sig, _values_codegen(out.dtype.bitwidth, True)


def _rans_encode_lanes(vectors):
    """The loop below for ``vectors`` vectors of ``WIDTH`` states."""
    lanes = WIDTH * vectors

    def rans_encode_lanes(typingctx, syms, fc, states, words, io, scale):
        """The encoder of :func:`rans_lanes`: code entries k - 1 down to 0 of ``syms`` (uint16
        symbols; io = [pos, k], k a multiple of lanes) into the ``lanes`` uint32 ``states``, a
        group of lanes entries at a time, last lane first: each state that would overflow
        (x >> (32 - scale) >= freq) first puts its low word below ``pos`` (a compressing store,
        in lane order, so that the decoder's expanding load reads them back), then
        x = (x // freq) << scale + x % freq + cum, the quotient from a double division (exact:
        x < 2^32). ``fc``: per symbol, freq | cum << 16 (uint32). Updates ``states`` and ``io``
        (pos: the lowest word written)."""
        sig = types.void(syms, fc, states, words, io, scale)

        def codegen(context, builder, signature, args):
            tys = signature.args
            syptr, fcptr, stptr, wptr, ioptr = (
                context.make_array(tys[i])(context, builder, args[i]).data for i in range(5))
            sc32 = builder.trunc(_i64(context, builder, args[5], tys[5]), _I32)
            scv = _splat(builder, sc32, _V32)
            upper = _splat(builder, builder.sub(ir.Constant(_I32, 32), sc32), _V32)
            pos0 = builder.load(ioptr)
            k0 = builder.load(builder.gep(ioptr, [ir.Constant(_I64, 1)]))
            x0 = _states_in(builder, stptr, vectors)
            pre, head, body, done = _loop(builder)
            k = builder.phi(_I64)
            pos = builder.phi(_I64)
            xs = [builder.phi(_V32) for _ in range(vectors)]
            step = ir.Constant(_I64, lanes)
            builder.cbranch(builder.and_(builder.icmp_signed(">=", k, step),
                                         builder.icmp_signed(">=", pos, step)), body, done)
            builder.position_at_end(body)
            kn = builder.sub(k, step)
            pn = pos
            xn = [None] * vectors
            for v in range(vectors - 1, -1, -1):
                s = builder.zext(_vload(builder, syptr, builder.add(kn, ir.Constant(
                    _I64, WIDTH * v)), _V16, 2), _V32)
                f = _gather(builder, fcptr, s)
                freq = builder.and_(f, _const(_V32, 0xFFFF))
                x = xs[v]
                need = builder.icmp_unsigned(">=", builder.lshr(x, upper), freq)
                count = _popcount(builder, need)
                pn = builder.sub(pn, count)
                _compress_store(builder, builder.trunc(x, _V16), wptr, pn, need, count)
                x = builder.select(need, builder.lshr(x, _const(_V32, 16)), x)
                dv = ir.VectorType(ir.DoubleType(), WIDTH)
                q = builder.fptoui(builder.fdiv(builder.uitofp(x, dv), builder.uitofp(freq, dv)),
                                   _V32)
                x = builder.add(builder.add(builder.shl(q, scv),
                                            builder.sub(x, builder.mul(q, freq))),
                                builder.lshr(f, _const(_V32, 16)))
                xn[v] = x
            _close(builder, pre, body, head, done,
                   [(k, k0, kn), (pos, pos0, pn), *zip(xs, x0, xn, strict=True)])
            _states_out(builder, stptr, xs, ioptr, [pos, k])
            return context.get_dummy_value()

        return sig, codegen

    return intrinsic(rans_encode_lanes)


rans_encode_32, rans_encode_64 = _rans_encode_lanes(2), _rans_encode_lanes(4)


@intrinsic
def pack_tail_groups(typingctx, u, c0, n, width, tails, base, w, L, top):
    """The tails of a block of ``u`` (n x m bit patterns, uint16 or uint32, C order) whose
    entries all have one and whose width is a multiple of ``WIDTH``: columns c0 .. c0 + width,
    row by row, OR-ed into the zeroed words of ``tails`` (uint32) from ``base``, 16 entries
    at a time (their tails share a word row and a shift, :func:`float_values`). A group that
    ends in its row's last bits writes no word past them (another block's)."""
    sig = types.void(u, c0, n, width, tails, base, w, L, top)
    in_bits = u.dtype.bitwidth
    vin = _V16 if in_bits == 16 else _V32

    def codegen(context, builder, signature, args):
        tys = signature.args
        uary = context.make_array(tys[0])(context, builder, args[0])
        uptr = uary.data
        m = builder.extract_value(uary.shape, 1)
        tptr = context.make_array(tys[4])(context, builder, args[4]).data
        c0_, n_, width_, base_ = (_i64(context, builder, args[i], tys[i]) for i in (1, 2, 3, 5))
        w_, L_, top_ = (builder.trunc(_i64(context, builder, args[i], tys[i]), _I32)
                        for i in (6, 7, 8))
        one = ir.Constant(_I32, 1)
        lowmask = _splat(builder, builder.sub(builder.shl(one, L_), one), _V32)
        Lv = _splat(builder, L_, _V32)
        topv = _splat(builder, top_, _V32)
        w64 = builder.zext(w_, _I64)
        lanes64 = ir.Constant(_I64, WIDTH)
        zero64 = ir.Constant(_I64, 0)
        tblock = builder.gep(tptr, [base_])
        pre = builder.block
        rhead, rbody, chead, cbody, spill, cnext, rnext, done = _new_blocks(
            builder, "rows", "row", "groups", "group", "spill", "next_group", "next_row", "done")
        builder.branch(rhead)
        builder.position_at_end(rhead)
        i = builder.phi(_I64)
        builder.cbranch(builder.icmp_signed("<", i, n_), rbody, done)
        builder.position_at_end(rbody)
        urow = builder.add(builder.mul(i, m), c0_)
        krow = builder.mul(i, width_)
        builder.branch(chead)
        builder.position_at_end(chead)
        jj = builder.phi(_I64)
        builder.cbranch(builder.icmp_signed("<", jj, width_), cbody, rnext)
        builder.position_at_end(cbody)
        x = builder.zext(_vload(builder, uptr, builder.add(urow, jj), vin, in_bits // 8), _V32)
        tail = builder.or_(builder.shl(builder.lshr(x, topv), Lv), builder.and_(x, lowmask))
        at = builder.mul(builder.udiv(builder.add(krow, jj), lanes64), w64)
        q = builder.mul(builder.lshr(at, ir.Constant(_I64, 5)), lanes64)
        s32 = builder.trunc(builder.and_(at, ir.Constant(_I64, 31)), _I32)
        sv = _splat(builder, s32, _V32)
        row = _vload(builder, tblock, q, _V32, 4)
        _vstore(builder, builder.or_(row, builder.shl(tail, sv)), tblock, q, 4)
        builder.cbranch(builder.icmp_unsigned(">", builder.add(s32, w_), ir.Constant(_I32, 32)),
                        spill, cnext)
        builder.position_at_end(spill)  # the group's tails run into the next word row
        q1 = builder.add(q, lanes64)
        row1 = _vload(builder, tblock, q1, _V32, 4)
        _vstore(builder, builder.or_(row1, builder.lshr(tail, builder.sub(_const(_V32, 32), sv))),
                tblock, q1, 4)
        builder.branch(cnext)
        builder.position_at_end(cnext)
        jj.add_incoming(zero64, rbody)
        jj.add_incoming(builder.add(jj, lanes64), cnext)
        builder.branch(chead)
        builder.position_at_end(rnext)
        i.add_incoming(zero64, pre)
        i.add_incoming(builder.add(i, ir.Constant(_I64, 1)), rnext)
        builder.branch(rhead)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


def _to32(builder, value):
    """An integer vector as 32-bit lanes (zero-extended or truncated)."""
    bits = value.type.element.width
    if bits == 32:
        return value
    return (builder.zext if bits < 32 else builder.trunc)(value, _V32)


@intrinsic
def segment_keys(typingctx, u, i, c0, width, c, ri, L, t, kmin, size, keys, kbase):
    """The key indices of entries c0 .. c0 + width of row i of ``u`` (n x m bit patterns,
    uint16, uint32 or uint64; each row contiguous, the rows ``strides[0]`` bytes apart) into
    keys[kbase:kbase + width] (uint16), 16 at a time (the last vector masked): for a nonzero
    magnitude v, (v >> L) - kmin - (((ri + c[j]) >> 2) << t) (``ri``: the row's offset plus
    2; ``c``: int8 column offsets); for +0.0 and -0.0, ``size`` + sign. Returns the
    segment's zeros (int64)."""
    sig = types.int64(u, i, c0, width, c, ri, L, t, kmin, size, keys, kbase)
    in_bits = u.dtype.bitwidth
    vin = ir.VectorType(ir.IntType(in_bits), WIDTH)

    def codegen(context, builder, signature, args):
        tys = signature.args
        uary = context.make_array(tys[0])(context, builder, args[0])
        cptr = context.make_array(tys[4])(context, builder, args[4]).data
        kptr = context.make_array(tys[10])(context, builder, args[10]).data
        i_, c0_, width_, kbase_ = (_i64(context, builder, args[j], tys[j]) for j in (1, 2, 3, 11))
        ri_, L_, t_, kmin_, size_ = (builder.trunc(_i64(context, builder, args[j], tys[j]), _I32)
                                     for j in (5, 6, 7, 8, 9))
        # row i starts i * strides[0] bytes in (rows may be a stepped view of a matrix)
        row_bytes = builder.mul(i_, builder.extract_value(uary.strides, 0))
        row = builder.bitcast(builder.gep(builder.bitcast(uary.data, ir.PointerType(_I8)),
                                          [row_bytes]), uary.data.type)
        urow = builder.gep(row, [c0_])
        crow = builder.gep(cptr, [c0_])
        krow = builder.gep(kptr, [kbase_])
        vmask = _const(vin, (1 << (in_bits - 1)) - 1)
        riv, tv = (_splat(builder, x, _V32) for x in (ri_, t_))
        Lv = _splat(builder, builder.zext(L_, vin.element) if in_bits > 32 else
                    builder.trunc(L_, vin.element) if in_bits < 32 else L_, vin)
        kminv, sizev = (_splat(builder, x, _V32) for x in (kmin_, size_))
        pre, head, body, done = _loop(builder)
        jj = builder.phi(_I64)
        zeros = builder.phi(_I64)
        builder.cbranch(builder.icmp_signed("<", jj, width_), body, done)
        builder.position_at_end(body)
        live = _live(builder, builder.sub(width_, jj))
        x = _masked_load(builder, urow, jj, vin, live)
        col = builder.sext(_masked_load(builder, crow, jj, _V8, live), _V32)
        v = builder.and_(x, vmask)
        octave = builder.shl(builder.ashr(builder.add(riv, col), _const(_V32, 2)), tv)
        h = builder.sub(builder.sub(_to32(builder, builder.lshr(v, Lv)), kminv), octave)
        isz = builder.icmp_unsigned("==", v, ir.Constant(vin, [0] * WIDTH))
        sign = _to32(builder, builder.lshr(x, _const(vin, in_bits - 1)))
        key = builder.select(isz, builder.add(sizev, sign), h)
        _masked_store(builder, builder.trunc(key, _V16), krow, jj, live)
        _close(builder, pre, body, head, done,
               [(jj, ir.Constant(_I64, 0), builder.add(jj, ir.Constant(_I64, WIDTH))),
                (zeros, ir.Constant(_I64, 0),
                 builder.add(zeros, _popcount(builder, builder.and_(isz, live))))])
        return zeros

    return sig, codegen
