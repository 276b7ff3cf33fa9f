// Command bench is bk's end-to-end benchmark. It generates a pg_dump-like
// SQL dump and an edited copy of it (package bench/gen), measures what each
// stage of a backup costs on this machine (chunking, keyed BLAKE3, zstd, AES-
// 256-GCM) and derives the two-core ceiling of a first snapshot, then times
// the bk binary on four runs: a first snapshot, an identical re-snapshot, a
// snapshot of the edited copy and a restore of it. When restic and borg are
// installed it does the same with them and prints bk's ratios to theirs.
//
// Then it measures delta storage (each part has a flag to turn it off):
//
//   - -nights: night 2 is the dump with 0.1% of its rows edited, night 3 is
//     night 2 with 1% edited (each night edits the one before, as a database
//     changes; gen.Edit). The three nights go into one repository per tool:
//     bk, bk on a repository made with --no-delta, restic and borg. It prints
//     each night's stored bytes as a share of night 1's, bk's share of the
//     others', and bk's snapshot throughput with deltas over --no-delta.
//   - -chain: nine nights of a smaller dump (-chain-size), each an edit of the
//     one before, so the newest snapshot's chunks sit at the maximum delta
//     chain depth; restores of night 1 and of the newest are timed, and the
//     depth of every chunk of the newest is read from the index.
//   - -fetch: in this process, the time to load one data blob (a delta base)
//     from the local repository, by chain depth, with a warm and a cold page
//     cache.
//   - -pgbench: when PostgreSQL is reachable (-pg), a database is filled by
//     pgbench -i, dumped, changed by a fixed number of pgbench transactions
//     and dumped again; bk and restic snapshot both dumps (and bk the -Fc -Z0
//     dumps too). The database is dropped at the end.
//   - -retention: 30 daily snapshots (-retention-days) of a dump of
//     -retention-size (256 MiB by default, so that three tools finish in a
//     few minutes; equal to -size it reuses the run's dump), each day the
//     one before with 1% of rows edited and a snapshot time one day later,
//     into one repository per tool. On each it times the structural check,
//     check --read-data next to cat of the same pack files (page cache
//     dropped before both), forget --keep-daily 10 --dry-run, a prune with
//     nothing to reclaim, forget --keep-daily 10 then prune, the idle prune
//     again, and a prune that repacks every partly used pack; with restic's
//     and borg's equivalents side by side.
//   - -days: dedup across days of real databases. For each of PostgreSQL
//     (-days-pg), MariaDB (-days-mysql) and SQLite (-days-engines picks), a
//     scratch database bk_bench_days_* gets one table of ints, text,
//     timestamps and numeric whose dump is about -days-size (200 MiB). bk
//     snapshots the engine URL (postgres://, mysql://, sqlite:///) on night 1,
//     then -days-update (1%) of the rows are updated at random, then night 2.
//     The same dumps, written to files by the engine's tool with bk's options
//     (pg_dump --format=plain; mariadb-dump --single-transaction --routines
//     --triggers --events --hex-blob; for SQLite the VACUUM INTO file bk
//     streams), go to restic and borg. It prints the bytes each night added
//     and night 2's share of night 1's. A server that is not reachable is
//     skipped with the reason; the database is dropped on every outcome.
//   - -s3: bk against a real S3 server, versitygw (on PATH or in
//     $GOPATH/bin; skipped with the reason without it), started on a free
//     127.0.0.1 port over a folder of the work folder, beside a local
//     repository with the same config and keys (so the same chunks). Each of
//     -s3-rounds rounds (3) snapshots night 1 (the dump) and night 2 (the
//     nights benchmark's) into fresh repositories; then night 1 is restored
//     to /dev/null from each, and `bk snapshots` is timed with a warm and a
//     cold cache (BK_CACHE_DIR deleted). It prints versitygw's CPU time
//     beside bk's, since both share the machine's CPUs; -s3-cpuprofile DIR
//     keeps bk's CPU profiles of the last round's night 1.
//
// Targets are printed next to the results, marked ok or below; the command
// never fails because of them, only because something did not work.
//
// Usage, from the module root:
//
//	go run ./bench -size 1GiB [-dir DIR] [-keep] [-skip-others] [-seed N] [-json FILE]
//	               [-nights=false] [-chain=false] [-chain-size 256MiB] [-fetch=false] [-pgbench=false] [-pg CONNINFO]
//	               [-retention=false] [-retention-size 256MiB] [-retention-days 30] [-retention-keep 10]
//	               [-days=false] [-days-size 200MiB] [-days-update 0.01] [-days-engines postgres,mysql,sqlite]
//	               [-s3=false] [-s3-rounds 3] [-s3-cpuprofile DIR]
//	go run ./bench -only days|pgbench|retention [flags]   # one section that needs no generated dump
//	go run ./bench -only s3 -size 512MiB [flags]         # the S3 section alone, on a dump of -size
//
// Throughput is in MB/s of the plain stream (1 MB = 10^6 bytes); CPU costs
// are CPU seconds per GB (10^9 bytes) of dump text on one core; sizes are in
// binary units.
package main
