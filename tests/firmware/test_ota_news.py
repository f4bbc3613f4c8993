# A wake imports ota's bookkeeping only when an update may have news (app._ota_news) or the
# server offers one: otherwise its names would stay in the heap through the upload
# (docs/firmware.md, RAM budget). The check must never miss what ota.busy(),
# ota.after_boot() or ota.work() would act on.
import json
import os

from station import app, fsutil, ota
from support import tempdir


def _in(d, fn):
    here = os.getcwd()
    os.chdir(d)
    try:
        return fn()
    finally:
        os.chdir(here)


def test_app_names_the_files_of_the_modules_it_does_not_import():
    from station import clock, config, uplink

    assert app.OTA_FILES == (ota.POINTER, ota.OFFER, ota.EVENTS, ota.TRUST_NEW)
    assert (app.CLOCK, app.CONFIG, app.CREDENTIALS) == (clock.PATH, config.PATH,
                                                         uplink.CREDENTIALS)


def test_no_news_no_ota():
    def check():
        assert not app._ota_news()  # a board as flashed without slots
        ota.write_pointer({"good": "a"})
        assert not app._ota_news() and not ota.busy()
        fsutil.makedirs(ota.DIR)  # the folder stays after everything was reported
        assert not app._ota_news() and not ota.busy()
    _in(tempdir(), check)


def test_every_kind_of_news_is_seen():
    cases = [
        ({"good": "a", "rolled_back": "9.9.9", "max_boots": 3}, None),
        ({"good": "a", "trial": "b", "boots": 0}, None),
        ({"good": "a"}, (ota.OFFER, {"release": "9.9.9", "phase": "offered"})),
        ({"good": "a"}, (ota.EVENTS, [{"release": "9.9.9", "state": "failed"}])),
        ({"good": "a"}, (ota.TRUST_NEW, "a confirmed release's CA bundle")),  # ota.work()
    ]
    for pointer, news in cases:
        _in(tempdir(), lambda p=pointer, n=news: _check_news(p, n))


def _check_news(pointer, news):
    ota.write_pointer(pointer)
    if news:
        fsutil.makedirs(ota.DIR)
        with open(news[0], "w") as f:
            f.write(json.dumps(news[1]))
    assert app._ota_news(), (pointer, news)
