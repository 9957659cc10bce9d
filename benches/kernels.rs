//! Criterion benches of the kernels every backend shares: message decode (nwp-fields,
//! and GRIB2 per packing and decoder), value
//! generation, slicing a field into chunks (reduce) and chunk encode. A regression
//! in shared code shows up here, where it is, not only end to end.

// `criterion_group!` defines a public function without documentation, and a lint
// attribute on a macro invocation is ignored: allow it for this bench crate.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rechunk_contract::grib2::{self, message::FieldId, Decoder, Grib2Params, Packing, Wrap};
use rechunk_contract::job::{Group, InputRef};
use rechunk_contract::nwp::message::{decode_message, encode_message, Codec};
use rechunk_contract::nwp::workload::NwpWorkload;
use rechunk_contract::nwp::zarr::{ArrayLayout, OutputParams};
use rechunk_contract::nwp::{DatasetParams, Format, Layout};
use rechunk_contract::{GroupReducer, Workload};

/// The icon-like field: 64×64 float32 (16 KiB), 4 noise bits, 146 steps, 32×32 tiles.
fn params(codec: Codec) -> DatasetParams {
    DatasetParams {
        layout: Layout::Files,
        groups: 1,
        variables: 4,
        steps: 146,
        ny: 64,
        nx: 64,
        codec,
        zstd_level: 1,
        noise_bits: 4,
        seed: 1,
        format: Format::NwpFields,
    }
}

/// One ICON-EU field (657 × 1377, 16 bits per value) as nwp-grib2.
fn icon_eu(packing: Packing, wrap: Wrap) -> DatasetParams {
    DatasetParams {
        ny: 657,
        nx: 1377,
        format: Format::Grib2(Grib2Params { packing, wrap }),
        ..params(Codec::None)
    }
}

const OUTPUT: OutputParams = OutputParams {
    cy: 32,
    cx: 32,
    zstd_level: 1,
    shard: None,
};

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_field_64x64");
    group.throughput(Throughput::Bytes(64 * 64 * 4));
    for codec in Codec::ALL {
        let p = params(codec);
        let msg = p.message_bytes(0, 1, 2).unwrap();
        let mut out = vec![0.0f32; 64 * 64];
        group.bench_with_input(BenchmarkId::from_parameter(codec.name()), &msg, |b, msg| {
            b.iter(|| decode_message(black_box(msg), (0, 1, 2, 64, 64), &mut out).unwrap())
        });
    }
    group.finish();
}

/// GRIB2 decode of one ICON-EU field per packing, wrap and decoder: unwrap, section
/// check and decode, as the workload's decode stage does it.
fn decode_grib2(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_grib2_icon_eu_657x1377");
    group.sample_size(10);
    group.throughput(Throughput::Elements(657 * 1377));
    for (packing, wrap) in [
        (Packing::Ccsds, Wrap::None),
        (Packing::Simple, Wrap::None),
        (Packing::Ccsds, Wrap::Bz2),
    ] {
        let p = icon_eu(packing, wrap);
        let Format::Grib2(g2) = p.format else {
            unreachable!()
        };
        let msg = p.message_bytes(0, 1, 2).unwrap();
        let id = FieldId {
            g: 0,
            v: 1,
            s: 2,
            ny: 657,
            nx: 1377,
        };
        let mut out = vec![0.0f32; 657 * 1377];
        for decoder in Decoder::ALL.into_iter().filter(|d| d.available().is_ok()) {
            let name = format!("{} {} {}", packing.name(), wrap.name(), decoder.name());
            group.bench_with_input(BenchmarkId::from_parameter(name), &msg, |b, msg| {
                b.iter(|| {
                    grib2::decode::decode(black_box(msg), &g2, decoder, id, 4, &mut out).unwrap()
                })
            });
        }
    }
    group.finish();
}

/// Where one ICON-EU CCSDS field's decode time goes: the bzip2 unwrap, the section
/// check, the CCSDS stream alone (rust-aec, what grib-rs calls), and the whole
/// grib-rs decode (stream, then unpacking and scaling through its iterators).
fn decode_grib2_stages(c: &mut Criterion) {
    let mut group = c.benchmark_group("grib2_stages_icon_eu_657x1377");
    group.sample_size(10);
    group.throughput(Throughput::Elements(657 * 1377));
    let p = icon_eu(Packing::Ccsds, Wrap::None);
    let msg = p.message_bytes(0, 1, 2).unwrap();
    let id = FieldId {
        g: 0,
        v: 1,
        s: 2,
        ny: 657,
        nx: 1377,
    };
    let wrapped = icon_eu(Packing::Ccsds, Wrap::Bz2)
        .message_bytes(0, 1, 2)
        .unwrap();
    group.bench_function("bz2 unwrap", |b| {
        b.iter(|| grib2::decode::unwrap_bz2(black_box(&wrapped), 4 << 20).unwrap())
    });
    group.bench_function("section check", |b| {
        b.iter(|| grib2::message::check(black_box(&msg), id, Packing::Ccsds, 4).unwrap())
    });
    let parsed = grib2::message::check(&msg, id, Packing::Ccsds, 4).unwrap();
    let (flags, block, rsi) = parsed.ccsds.unwrap();
    let params = rust_aec::AecParams::new(
        16,
        block as u32,
        rsi as u32,
        rust_aec::flags_from_grib2_ccsds_flags(flags),
    );
    group.bench_function("ccsds stream (rust-aec)", |b| {
        b.iter(|| {
            rust_aec::decode(black_box(&msg[parsed.data.clone()]), params, 657 * 1377).unwrap()
        })
    });
    let mut out = vec![0.0f32; 657 * 1377];
    let Format::Grib2(g2) = p.format else {
        unreachable!()
    };
    group.bench_function("whole decode (grib)", |b| {
        b.iter(|| {
            grib2::decode::decode(black_box(&msg), &g2, Decoder::Grib, id, 4, &mut out).unwrap()
        })
    });
    group.finish();
}

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate_field_64x64");
    group.throughput(Throughput::Bytes(64 * 64 * 4));
    let p = params(Codec::Zstd);
    let mut field = vec![0.0f32; 64 * 64];
    group.bench_function("values", |b| {
        b.iter(|| p.values().fill_field(0, black_box(1), 2, &mut field))
    });
    let mut msg = Vec::new();
    group.bench_function("values+zstd1 message", |b| {
        b.iter(|| {
            p.values().fill_field(0, black_box(1), 2, &mut field);
            msg.clear();
            encode_message(&mut msg, Codec::Zstd, 1, 0, 1, 2, 64, 64, &field);
        })
    });
    group.finish();
}

fn reduce(c: &mut Criterion) {
    let p = params(Codec::None);
    let workload = NwpWorkload::new(p.clone(), OUTPUT);
    let group = Group {
        index: 0,
        first_item: 0,
        inputs: (0..p.variables * p.steps)
            .map(|i| InputRef {
                path: format!("{i}").into(),
                range: None,
            })
            .collect(),
    };
    let field = p.values().field(0, 0, 0);
    let mut g = c.benchmark_group("reduce");
    g.throughput(Throughput::Bytes(p.steps as u64 * 64 * 64 * 4));
    // One variable's 146 pushes per iteration: slicing into 4 tiles plus the emit.
    // The fields are made outside the timed part, as decode would hand them over.
    g.bench_function("push one variable (146 fields of 64x64)", |b| {
        b.iter_batched(
            || vec![field.clone(); p.steps as usize],
            |fields| {
                let mut r = workload.reduce_group(&group);
                for (s, f) in fields.into_iter().enumerate() {
                    black_box(r.push(s, f).unwrap());
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let p = params(Codec::Zstd);
    let layout = ArrayLayout::new(p.clone(), OUTPUT);
    let chunk = layout.expected_chunk(0, 1, 0, 0);
    let mut g = c.benchmark_group("encode_chunk_146x32x32");
    // A 146×32×32 chunk holds a quarter of each of 146 fields.
    g.throughput(Throughput::Bytes(chunk.len() as u64 * 4));
    g.bench_function("zstd1", |b| {
        b.iter(|| layout.encode_chunk(black_box(&chunk)).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    decode,
    decode_grib2,
    decode_grib2_stages,
    generate,
    reduce,
    encode
);
criterion_main!(benches);
