import os

from station import flashqueue, fsutil
from station.flashqueue import FlashQueue
from support import tempdir


def payload(i):
    return bytes([(i * 7 + k) & 0xFF for k in range(22)])


def fill(q, n):
    return [q.append(payload(q.next_seq)) for _ in range(n)]


def test_append_peek_ack_in_order():
    q = FlashQueue(tempdir(), segment_records=4)
    seqs = fill(q, 10)
    assert seqs == list(range(1, 11))
    batch = q.peek(3)
    assert [s for s, _ in batch] == [1, 2, 3]
    assert batch[0][1] == payload(1)
    q.ack(3)
    assert [s for s, _ in q.peek(100)] == list(range(4, 11))
    assert q.depth() == 7


def test_peek_after_a_seq_skips_what_was_sent_but_keeps_it():
    q = FlashQueue(tempdir(), segment_records=4)
    fill(q, 10)
    assert [s for s, _ in q.peek(3, after=5)] == [6, 7, 8]
    assert [s for s, _ in q.peek(100, after=10)] == []
    q.ack(7)
    assert [s for s, _ in q.peek(100, after=2)] == [8, 9, 10]  # never below the acked
    assert q.depth() == 3


def test_survives_reopen_and_never_reuses_a_sequence_number():
    root = tempdir()
    q = FlashQueue(root, segment_records=4, keep=0)
    fill(q, 9)
    q.ack(9)  # everything delivered, nothing retained: all segments deleted
    assert [n for n in os.listdir(root) if n.startswith("s")] == []
    q2 = FlashQueue(root, segment_records=4, keep=0)
    assert q2.append(payload(0)) == 10
    fill(q2, 2)
    q3 = FlashQueue(root, segment_records=4, keep=0)  # meta says 10, the tail says 13
    assert q3.next_seq == 13
    assert [s for s, _ in q3.peek(10)] == [10, 11, 12]


def test_acked_segments_are_deleted_and_ack_is_idempotent():
    root = tempdir()
    q = FlashQueue(root, segment_records=4, keep=0)
    fill(q, 12)
    q.ack(8)
    assert sorted(n for n in os.listdir(root) if n.startswith("s")) == ["s00000009"]
    q.ack(5)  # an older ack changes nothing
    assert q.acked == 8
    q.ack(1000)  # never past what exists
    assert q.acked == 12


def test_bound_drops_oldest_segments_and_counts_them():
    q = FlashQueue(tempdir(), max_records=10, segment_records=4)
    fill(q, 15)
    assert q.dropped == 8  # two whole segments of 4
    assert q.depth() == 7
    assert q.peek(100)[0][0] == 9
    reopened = FlashQueue(q.root, max_records=10, segment_records=4)
    assert reopened.dropped == 8


def test_torn_tail_at_every_byte_loses_only_the_torn_record():
    root = tempdir()
    q = FlashQueue(root, segment_records=100)
    fill(q, 3)
    path = root + "/s00000001"
    whole = fsutil.read_bytes(path)
    frame_len = len(whole) // 3
    for cut in range(2 * frame_len, len(whole) + 1):
        with open(path, "wb") as f:
            f.write(whole[:cut])
        q2 = FlashQueue(root, segment_records=100)
        got = [s for s, _ in q2.peek(10)]
        assert got == ([1, 2, 3] if cut == len(whole) else [1, 2]), (cut, got)
        # appends after a torn tail are readable and numbered after everything seen
        q2.append(payload(99))
        q3 = FlashQueue(root, segment_records=100)
        after = [s for s, _ in q3.peek(10)]
        assert after[-1] == q3.next_seq - 1
        assert after[:2] == [1, 2]
        for name in os.listdir(root):
            if name.startswith("s") and name != "s00000001":
                os.remove(root + "/" + name)
        fsutil.write_atomic(root + "/meta", b"")


def test_corrupted_byte_skips_one_record_and_is_counted():
    root = tempdir()
    q = FlashQueue(root, segment_records=100)
    fill(q, 5)
    path = root + "/s00000001"
    data = bytearray(fsutil.read_bytes(path))
    flen = len(data) // 5
    data[2 * flen + 9] ^= 0x40  # inside record 3's payload: CRC fails
    with open(path, "wb") as f:
        f.write(data)
    q2 = FlashQueue(root, segment_records=100)
    assert [s for s, _ in q2.peek(10)] == [1, 2, 4, 5]
    assert q2.skipped_bytes >= flen


def test_empty_short_or_garbled_meta_is_invalid_not_fatal():
    for bad in (b"", b"MQ1", b"\x00" * 20, b"x" * 200):
        root = tempdir()
        q = FlashQueue(root, segment_records=4)
        fill(q, 6)
        with open(root + "/meta", "wb") as f:
            f.write(bad)
        q2 = FlashQueue(root, segment_records=4)
        assert not q2.meta_was_valid
        assert q2.next_seq == 7  # recovered from the segments
        assert [s for s, _ in q2.peek(10)] == [1, 2, 3, 4, 5, 6]


def test_garbage_files_in_the_queue_directory_are_ignored():
    root = tempdir()
    q = FlashQueue(root)
    fill(q, 2)
    with open(root + "/s0000zzzz", "wb") as f:
        f.write(b"junk")
    with open(root + "/notes.txt", "wb") as f:
        f.write(b"junk")
    try:
        FlashQueue(root)
        raised = False
    except ValueError:
        raised = True
    assert raised is False


def test_frames_resync_after_garbage():
    blob = b"\xa5\x01junk" + flashqueue.frame(7, b"abc") + b"\xa5" + flashqueue.frame(8, b"")
    frames, skipped = flashqueue.parse_frames(blob)
    assert frames == [(7, b"abc"), (8, b"")]
    assert skipped == 7


def test_erased_board_numbers_above_what_the_server_holds():
    root = tempdir()
    q = FlashQueue(root, segment_records=4)
    fill(q, 6)  # taken before provisioning, numbered 1..6: the server already has 1..500
    assert q.start_after(500) == 6
    assert q.depth() == 0 and q.dropped == 6 and q.peek(10) == []
    assert fill(q, 2) == [501, 502]
    q = FlashQueue(root, segment_records=4)  # and after a reset
    assert q.next_seq == 503 and [s for s, _ in q.peek(10)] == [501, 502]
    assert q.start_after(400) == 0 and q.next_seq == 503  # already above: nothing changes


def segments(root):
    return sorted(n for n in os.listdir(root) if n.startswith("s"))


def test_acked_readings_are_kept_for_the_window_and_read_again_on_request():
    root = tempdir()
    q = FlashQueue(root, segment_records=4, keep=6)
    fill(q, 14)
    q.ack(12)
    # 1..4 are older than the newest 6 acknowledged (7..12): gone; 5..8 hold 7 and 8: kept
    assert segments(root) == ["s00000005", "s00000009", "s0000000d"]
    assert q.depth() == 2 and q.oldest() == 5 and q.held() == 10
    assert [s for s, _ in q.peek(100)] == [13, 14]  # unacknowledged only, as before
    again = q.peek(3, after=6, acked_too=True)
    assert [s for s, _ in again] == [7, 8, 9] and again[0][1] == payload(7)
    assert [s for s, _ in q.peek(100, after=0, acked_too=True)] == list(range(5, 15))
    q2 = FlashQueue(root, segment_records=4, keep=6)  # kept across a reset
    assert q2.depth() == 2 and [s for s, _ in q2.peek(2, after=4, acked_too=True)] == [5, 6]
    q2.ack(14)
    assert segments(root) == ["s00000009", "s0000000d"] and q2.depth() == 0
    assert q2.oldest() == 9 and q2.peek(10) == []


def test_kept_readings_give_way_to_unsent_ones_within_the_bound_uncounted():
    q = FlashQueue(tempdir(), max_records=12, segment_records=4, keep=100)
    fill(q, 8)
    q.ack(8)
    fill(q, 8)  # 16 held: the kept ones go first, nothing unsent is dropped
    assert q.dropped == 0 and q.depth() == 8 and q.held() <= 12 and q.oldest() == 5
    fill(q, 8)  # now unsent ones over the bound: dropped and counted, as before
    assert q.dropped == 4 and q.depth() == 12 and q.held() == 12
    r = FlashQueue(tempdir(), segment_records=4, keep=100)
    fill(r, 9)
    r.ack(8)
    r.drop_oldest()  # flash full: a kept segment goes first, nothing lost is counted
    assert r.dropped == 0 and r.acked == 8 and r.oldest() == 5 and r.depth() == 1


def test_a_board_numbered_above_the_server_keeps_nothing_below():
    q = FlashQueue(tempdir(), segment_records=4, keep=100)
    fill(q, 6)
    q.ack(6)
    assert q.oldest() == 1
    q.start_after(500)  # 1..6 were another numbering: never to be sent again
    assert q.oldest() == 501 and q.peek(10, acked_too=True) == []


def test_the_default_window_is_a_week_of_flood_readings_in_160_kb():
    from station import codec, config

    rec = codec.encode_full(1, 0, 1000, 3700, 0, 20.0, 50.0, 1000.0, 0.0)
    frame_len = len(flashqueue.frame(1, bytes(4) + rec))  # clock time + full record
    assert config.DEFAULTS["queue_keep"] == flashqueue.KEEP
    assert flashqueue.KEEP * config.DEFAULTS["interval_flood_s"] == 7 * 86400
    assert frame_len == 32 and flashqueue.KEEP * frame_len < 165000
    assert config.RANGES["queue_keep"][1] <= config.DEFAULTS["queue_max"]
