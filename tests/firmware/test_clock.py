# The station's clock across syncs and power losses (station/clock.py): stored readings keep
# their true times, a power loss restores the floor kept in flash, and a sync after a power
# loss moves only the readings taken on the lost clock.
import struct

from station import clock, codec, state
from station.flashqueue import FlashQueue
from station.hw import sim
from support import tempdir


def stored(t, seq):
    return struct.pack(">I", t) + codec.encode_full(seq, 0, 1000 + seq, 3700, 0, 20.0, 50.0,
                                                    1000.0, 0.0)


def times(q, st):
    return [state.reading_time(p, s, st["adj"]) for s, p in q.peek(100)]


def test_a_sync_moves_the_readings_of_this_era_only_and_is_kept_in_flash():
    d = tempdir()
    q = FlashQueue(d + "/queue")
    board = sim.Board(sim.World())
    st = state.defaults()
    t0 = board.time()
    q.append(stored(t0, 1))
    board.world.now += 600
    q.append(stored(t0 + 600, 2))
    # the clock was 5000 s slow: the server's time moves it, and both readings with it
    assert clock.set_from_server(board, st, q, t0 + 600 + 5000 + board.EPOCH_OFFSET,
                                 d + "/clock.json")
    assert board.time() == t0 + 5600 and st["synced"]
    assert st["adj"] == [[0, 3, 5000]] and st["era"] == 3
    assert times(q, st) == [t0 + 5000, t0 + 5600]
    assert clock.load(d + "/clock.json") == {"floor": t0 + 5600, "adj": [[0, 3, 5000]],
                                             "open": None}
    # a small drift once synced leaves the clock alone
    assert not clock.set_from_server(board, st, q, board.time() + board.EPOCH_OFFSET + 2,
                                     d + "/clock.json")


def test_after_a_power_loss_only_the_new_readings_move():
    d = tempdir()
    q = FlashQueue(d + "/queue")
    w = sim.World()
    board = sim.Board(w)
    st = state.defaults()
    true0 = board.time()
    clock.set_from_server(board, st, q, true0 + board.EPOCH_OFFSET, d + "/clock.json")
    q.append(stored(true0, 1))  # taken on the right time
    # The power goes: the RTC restarts at 2000-01-01 and RTC memory is lost.
    w.now += 3600
    board = sim.Board(w, reset_cause="power_on")
    assert board.time() == 0
    st = state.load(board)
    clock.after_power_loss(board, st, q, d + "/clock.json")
    assert board.time() == true0  # the floor: the last time it knew
    t_bad = board.time() + 5
    q.append(stored(t_bad, 2))  # on the restored, hour-slow clock
    assert clock.set_from_server(board, st, q, w.now + board.EPOCH_OFFSET, d + "/clock.json")
    # the reading from before the loss keeps its time; the one after moves by the hour
    assert times(q, st) == [true0, t_bad + 3600]


def test_an_unreadable_clock_file_means_no_floor():
    d = tempdir()
    for raw in (b"{", b'{"floor": "x"}', b'{"floor": 5, "adj": [[1, 2]]}', b"[]"):
        with open(d + "/clock.json", "wb") as f:
            f.write(raw)
        assert clock.load(d + "/clock.json") == {"floor": 0, "adj": [], "open": None}


def test_two_power_losses_before_a_sync_are_one_era():
    d = tempdir()
    q = FlashQueue(d + "/queue")
    w = sim.World()
    board = sim.Board(w)
    st = state.defaults()
    true0 = board.time()
    clock.set_from_server(board, st, q, true0 + board.EPOCH_OFFSET, d + "/clock.json")
    stamps = []
    for _ in (1, 2):  # two power losses, each followed by one reading, no sync between
        w.now += 600
        board = sim.Board(w, reset_cause="power_on")
        st = state.load(board)
        clock.after_power_loss(board, st, q, d + "/clock.json")
        t = max(board.time(), stamps[-1] + 1) if stamps else board.time()  # cycle's clamp
        board.set_time(t)
        stamps.append(t)
        q.append(stored(t, q.next_seq))
    assert st["era"] == 1
    clock.set_from_server(board, st, q, w.now + board.EPOCH_OFFSET, d + "/clock.json")
    got = times(q, st)
    assert got == sorted(got) and len(set(got)) == 2 and got[-1] == w.now


def test_times_kept_on_the_old_clock_move_with_it():
    d = tempdir()
    q = FlashQueue(d + "/queue")
    board = sim.Board(sim.World())
    st = state.defaults()
    now = board.time()
    st["next_wake"], st["t"], st["retry_at"] = now + 600, now, now + 60
    clock.set_from_server(board, st, q, now - 86400 + board.EPOCH_OFFSET, d + "/clock.json")
    # the clock went back a day: the next wake is still 600 s away, not a day and 600 s
    assert st["next_wake"] - board.time() == 600 and st["t"] == board.time()
    assert st["retry_at"] - board.time() == 60
