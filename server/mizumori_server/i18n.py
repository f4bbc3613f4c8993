"""The dashboard's words in Japanese and English (docs/operator.md). Keys are what the
templates and static/app.js ask for; a missing key shows as itself, so a gap is visible.

Also what the API says in either language (docs/alerts.md, "Languages"): alert messages
(ALERT_TEXT, rendered from an alert's stored values by alerts.describe) and the problems a
refused request is told about (PROBLEMS, VALIDATION). The Japanese follows the CAP feed's
(cap.py) wording."""

import re
from typing import Any

from fastapi import HTTPException
from starlette.requests import Request

LANGUAGES = ("ja", "en")
LANG_COOKIE = "mizumori_lang"

TEXT: dict[str, tuple[str, str]] = {
    "app": ("水守 水位監視", "Mizumori water levels"),
    "map": ("地図", "Map"),
    "fleet": ("観測局一覧", "Fleet"),
    "alerts": ("警報", "Alerts"),
    "ota": ("更新配信", "Updates"),
    "provision": ("端末登録", "Provisioning"),
    "logout": ("ログアウト", "Log out"),
    "login": ("ログイン", "Log in"),
    "username": ("ユーザー名", "User name"),
    "password": ("パスワード", "Password"),
    "login_failed": ("ログインできませんでした", "Login failed"),
    "language": ("English", "日本語"),  # the link to the other language
    "station": ("観測局", "Station"),
    "status": ("状態", "Status"),
    "online": ("正常", "online"),
    "late": ("遅延", "late"),
    "offline": ("途絶", "offline"),
    "unseen": ("未受信", "unseen"),
    "level": ("水位", "Water level"),
    "alert_level": ("警戒段階", "River level"),
    "level_0": ("平常", "normal"),
    "level_1": ("水防団待機水位", "standby"),
    "level_2": ("はん濫注意水位", "caution"),
    "level_3": ("避難判断水位", "evacuation decision"),
    "level_4": ("はん濫危険水位", "danger"),
    "battery": ("電池", "Battery"),
    "signal": ("電波", "Signal"),
    "firmware": ("ファームウェア", "Firmware"),
    "last_seen": ("最終受信", "Last seen"),
    # The observation profile (docs/firmware.md, "Schedule"): MLIT crisis-gauge modes.
    "observation_mode": ("観測モード", "Observation mode"),
    "mode_standard": ("標準", "standard"),
    "mode_watch": ("監視（観測開始水位未満・日1回送信）", "watch (below the start level, daily)"),
    "mode_observation": ("観測（観測開始水位以上）", "observation (at or above the start level)"),
    "queue": ("未送信", "Queued"),
    "all": ("すべて", "all"),
    "filter": ("絞り込み", "Filter"),
    "open_station": ("詳細", "Details"),
    "hour": ("1時間", "hour"),
    "day": ("1日", "day"),
    "week": ("1週間", "week"),
    "year": ("1年", "year"),
    "temperature": ("気温", "Temperature"),
    "humidity": ("湿度", "Humidity"),
    "rain": ("雨量", "Rain"),
    "recent_alerts": ("最近の警報", "Recent alerts"),
    "devices": ("端末の履歴", "Device history"),
    "installed": ("設置", "installed"),
    "removed": ("撤去", "removed"),
    "settings": ("設定", "Settings"),
    "save": ("保存", "Save"),
    "saved": ("保存しました", "Saved"),
    # the settings form: levels in m, as the chart (docs/operator.md, "Units")
    "standby_mm": ("水防団待機水位 (m)", "Standby (m)"),
    "caution_mm": ("はん濫注意水位 (m)", "Caution (m)"),
    "evacuation_mm": ("避難判断水位 (m)", "Evacuation decision (m)"),
    "danger_mm": ("はん濫危険水位 (m)", "Danger (m)"),
    "interval_normal_s": ("平常時の観測間隔 (秒)", "Normal interval (s)"),
    "interval_flood_s": ("増水時の観測間隔 (秒)", "Flood interval (s)"),
    "rise_limit_mm_h": ("急上昇の基準 (m/時)", "Rapid rise (m/h)"),
    # the same fields as a refusal names them, in the API's units (i18n.label)
    "field_standby_mm": ("水防団待機水位 (mm)", "standby_mm"),
    "field_caution_mm": ("はん濫注意水位 (mm)", "caution_mm"),
    "field_evacuation_mm": ("避難判断水位 (mm)", "evacuation_mm"),
    "field_danger_mm": ("はん濫危険水位 (mm)", "danger_mm"),
    "field_interval_normal_s": ("平常時の観測間隔 (秒)", "interval_normal_s"),
    "field_interval_flood_s": ("増水時の観測間隔 (秒)", "interval_flood_s"),
    "field_rise_limit_mm_h": ("急上昇の基準 (mm/時)", "rise_limit_mm_h"),
    "active_alerts": ("発令中の警報", "Active alerts"),
    "closed_alerts": ("解除済み", "Closed"),
    "type": ("種類", "Type"),
    "message": ("内容", "Message"),
    "opened": ("発生", "Opened"),
    # where one time is shown for an alert: when it reached the level it shows
    "since": ("現段階の発生", "Current level since"),
    "level_history": ("経過", "History"),
    "alert_opened": ("初回発生", "first opened"),
    "state": ("対応", "State"),
    "acknowledge": ("確認", "Acknowledge"),
    "note": ("メモ", "Note"),
    "open": ("未確認", "open"),
    "acknowledged": ("確認済み", "acknowledged"),
    "closed": ("解除", "closed"),
    "type_level": ("河川水位", "river level"),
    "type_rise": ("急上昇", "rapid rise"),
    "type_offline": ("通信途絶", "offline"),
    "type_battery": ("電池低下", "low battery"),
    "type_fault": ("センサー異常", "sensor fault"),
    "type_queue_overflow": ("データ欠落", "queue overflow"),
    "none": ("なし", "none"),
    "releases": ("リリース", "Releases"),
    "upload_release": ("リリースを登録", "Upload a release"),
    "version": ("バージョン", "Version"),
    "uploaded": ("登録しました", "Uploaded"),
    "rollouts": ("配信", "Rollouts"),
    "start_rollout": ("配信を開始", "Start a rollout"),
    "target": ("対象", "Target"),
    "stages": ("段階 (%)", "Stages (%)"),
    "target_hint": ("空欄ですべて、またはタグ名", "empty for all, or a tag"),
    "success_pct": ("次の段階へ進む成功率 (%)", "Success to advance (%)"),
    "max_failure_pct": ("自動停止する失敗率 (%)", "Halt at failures (%)"),
    "pause": ("一時停止", "Pause"),
    "resume": ("再開", "Resume"),
    "abort": ("中止", "Abort"),
    "progress": ("進捗", "Progress"),
    "hardware_id": ("ハードウェアID", "Hardware id"),
    "register": ("登録", "Register"),
    "secret_once": ("この秘密鍵は一度だけ表示されます。端末に書き込んでください。",
                    "This secret is shown once: write it onto the board now."),
    "device_id": ("端末ID", "Device id"),
    "transport": ("通信方式", "Transport"),
    "replace_title": ("この観測局には稼働中の端末があります", "This station already has a device"),
    "replace_warning": ("観測局 {station} には端末 #{device}（{hardware}）が設置されています。"
                        "最終受信: {last}。置き換えると、この端末は観測局から外れ、以後の"
                        "データは受け付けられません。",
                        "Station {station} already has device #{device} ({hardware}); "
                        "its last report: {last}. Replacing it takes that device off the "
                        "station: its reports are refused from then on."),
    "replace_confirm": ("置き換えて登録", "Replace it and register"),
    "cancel": ("やめる", "Cancel"),
    "never_reported": ("受信なし", "never"),
    "replaced_by": ("端末 #{n} に交換", "replaced by device #{n}"),
    # calibration against the staff gauge (docs/operator.md, "Calibration")
    "calibration": ("量水標との校正", "Calibration against the staff gauge"),
    "cal_current": ("現在の校正", "Calibration"),
    "cal_last_check": ("最後の確認", "Last check"),
    "cal_uncalibrated": ("未校正", "not calibrated"),
    "cal_offset": ("補正量", "offset"),
    "cal_scale": ("倍率", "scale"),
    "cal_residual": ("残差", "residual"),
    "cal_staff": ("量水標", "staff gauge"),
    "cal_reading": ("観測値", "station"),
    "cal_pending": ("観測局への反映待ち", "waiting for the station to take it"),
    "cal_active_from": ("適用", "in use from"),
    "cal_kind_offset": ("補正量の校正 (1点)", "offset (one point)"),
    "cal_kind_scale": ("補正量と倍率の校正 (2点)", "offset and scale (two points)"),
    "cal_kind_check": ("確認のみ", "check only"),
    "cal_staff_m": ("量水標の読み (m)", "Staff gauge reading (m)"),
    "cal_submit": ("記録", "Record"),
    "cal_hint": ("量水標を cm 単位で読み、観測局の最新の観測値 (15分以内) と比べます",
                 "Read the staff gauge to the cm; it is compared with the station's latest "
                 "reading (within 15 min)"),
    "cal_check_again": ("取付高さを変えたため {station} の校正が合わなくなりました。量水標で"
                        "確認し直してください (確認のみ、または現地で mizumori device calibrate "
                        "--check-only)",
                        "the mount height of {station} changed, so its calibration no longer "
                        "fits: check it against the staff gauge again (check only, or on site "
                        "mizumori device calibrate --check-only)"),
    "live": ("自動更新中", "live"),
    "error": ("エラー", "Error"),
    "no_tiles": ("地図タイルを読み込めません（観測局は表示されています）",
                 "Map tiles unreachable (the stations are still shown)"),
    "health": ("エラーと再起動", "Errors and restarts"),
    "last_error": ("最後のエラー", "Last error"),
    "error_cleared": ("解消", "cleared"),
    "last_reset": ("最後の再起動", "Last restart"),
    "restart": ("再起動", "restart"),
    "reset_power_on": ("電源投入", "power-on"),
    "reset_hard": ("リセット (ENボタン)", "reset (EN button)"),
    "reset_wdt": ("ウォッチドッグ", "watchdog"),
    "reset_deepsleep": ("スリープからの起床", "wake from deep sleep"),
    "reset_soft": ("ソフトリセット", "soft reset"),
    "reset_brownout": ("電圧低下 (ブラウンアウト)", "brown-out"),
    "reset_unknown": ("不明", "unknown"),
    "reset_hint_wdt": ("ファームウェアが応答しなくなり、自動で再起動しました",
                       "the firmware hung and was restarted"),
    "reset_hint_brownout": ("電源電圧が下がりました。電池と配線を確認してください",
                            "the supply voltage dropped: check the battery and wiring"),
    "minutes_ago": ("{n}分前", "{n} min ago"),
    "expected_every": ("{n}分ごと", "every {n} min"),
    "secret": ("秘密鍵", "Secret"),
    "role_admin": ("管理者", "admin"),
    "role_operator": ("運用担当", "operator"),
    "role_technician": ("技術者", "technician"),
    "role_viewer": ("閲覧のみ", "viewer"),
    "level_m": ("水位 (m)", "Water level (m)"),
    "time": ("時刻", "Time"),
    # where the chart (m) and the settings (mm) meet: both units
    "threshold_hint": ("水位は観測局の基準面からの高さで、グラフと同じ m で入力します。"
                       "観測局と API に保存される mm を右に表示します（1 m = 1000 mm）。",
                       "Levels are heights above the station datum, in m as on the chart; "
                       "beside each, the mm the station and the API keep (1 m = 1000 mm)."),
    # rollout states (rollouts.py) and a device's states in a rollout
    "rollout_active": ("配信中", "active"),
    "rollout_paused": ("一時停止中", "paused"),
    "rollout_waiting": ("次の段階待ち", "waiting for the next stage"),
    "rollout_halted": ("自動停止", "halted"),
    "rollout_completed": ("完了", "completed"),
    "rollout_aborted": ("中止", "aborted"),
    "device_pending": ("待機", "pending"),
    "device_offered": ("通知済み", "offered"),
    "device_downloading": ("ダウンロード中", "downloading"),
    "device_downloaded": ("ダウンロード済み", "downloaded"),
    "device_installed": ("インストール済み", "installed"),
    "device_confirmed": ("更新完了", "confirmed"),
    "device_succeeded": ("成功", "succeeded"),
    "device_failed": ("失敗", "failed"),
    "device_rolled_back": ("切り戻し", "rolled back"),
    "transport_wifi": ("Wi-Fi", "Wi-Fi"),
    "transport_lorawan": ("LoRaWAN", "LoRaWAN"),
    # sensor flags (codec.FLAG_NAMES)
    "flag_no_echo": ("反射なし", "no echo"),
    "flag_out_of_range": ("測定範囲外", "out of range"),
    "flag_stuck": ("値が変化しない", "stuck"),
    "flag_jump": ("急変", "jump"),
    "flag_sensor_missing": ("センサー未接続", "sensor missing"),
    "flag_flood_mode": ("増水モード", "flood mode"),
    "flag_queue_dropped": ("データ欠落", "queue dropped"),
    "flag_clock_unsynced": ("時刻未同期", "clock unsynced"),
}

# An alert's message by type, from its stored values (alerts.describe); "{level}" is the
# river level's name (level_1..4 above).
ALERT_TEXT: dict[str, tuple[str, str]] = {
    "level": ("{level}に達しました（水位 {m} m）", "{level} reached (water level {m} m)"),
    "level_no_value": ("{level}に達しました", "{level} reached"),
    "rise": ("水位が急上昇しています（毎時 {rate} m、基準 毎時 {limit} m）",
             "the water is rising fast ({rate} m/h, limit {limit} m/h)"),
    "battery": ("電池電圧が低下しています（{v} V、基準 {low} V 未満）",
                "battery low ({v} V, below {low} V)"),
    "fault": ("直近{n}回の観測でセンサー異常: {flags}",
              "sensor fault in the last {n} readings: {flags}"),
    "queue_overflow": ("観測局の未送信データがあふれ、観測値が欠落しました（{n}件、"
                       "通し番号 {seq} から）",
                       "the station's queue overflowed and dropped readings ({n}, from "
                       "sequence number {seq})"),
    "offline": ("最終受信 {ago}分前（{every}分ごとの予定）",
                "last seen {ago} min ago (expected every {every} min)"),
}

# What a refused request is told, by code (raise problem(...)): the API's own checks.
PROBLEMS: dict[str, tuple[str, str]] = {
    "river_levels_order": ("河川水位は 水防団待機水位 ≦ はん濫注意水位 ≦ 避難判断水位 ≦ "
                           "はん濫危険水位 の順にしてください",
                           "river levels must rise: standby <= caution <= evacuation <= "
                           "danger"),
    # a calibration entered on the page (api/stations.py, fit_reading)
    "cal_reading_stale": ("{station} の最新の観測値は {age} 分前のものです。画面からの校正には "
                          "{limit} 分以内の観測値が必要です。観測局の送信 ({every} 分ごと) の"
                          "直後に量水標を読んで入力するか、現地で mizumori device calibrate "
                          "を使ってください",
                          "the latest reading of {station} is {age} min old; the page calibrates "
                          "only with a reading from the last {limit} min: read the staff gauge "
                          "just after the station uploads (every {every} min) and enter it "
                          "then, or calibrate on site with mizumori device calibrate"),
    "cal_reading_no_temp": ("{station} の最新の観測値は気温による音速の補正がされていません "
                            "(温度センサーが値を返していません)。観測局の BME280 を直し、"
                            "その後の観測値で校正してください",
                            "the latest reading of {station} is not corrected for the speed of "
                            "sound (its temperature sensor gave none): fix the station's "
                            "BME280, then calibrate with a reading taken after that"),
    "cal_reading_noisy": ("{station} の最新の観測値は水面が荒れていました (ばらつき {spread} mm)。"
                          "水面が落ち着いてからの観測値で校正してください",
                          "the latest reading of {station} was noisy (spread {spread} mm): "
                          "calibrate with a reading taken when the water is calm"),
    "cal_reading_short": ("{station} の最新の観測値は監視モードの短い計測です (20 秒の観測窓では"
                          "ありません)。観測局の毎日の定時送信の後、または現地で mizumori device "
                          "calibrate で校正してください",
                          "the latest reading of {station} is a watch-mode burst, not the 20 s "
                          "window: calibrate with the reading of its daily heartbeat, or on site "
                          "with mizumori device calibrate"),
    "cannot_be_null": ("{field} は空にできません", "{field} cannot be null"),
    "no_station": ("観測局 {code} はありません", "no station {code}"),
    "station_exists": ("観測局 {code} はすでにあります", "station {code} exists"),
    "start_before_end": ("開始は終了より前にしてください", "start must be before end"),
    "rollout_target": ("対象は すべて・タグ・観測局・端末 のいずれか一つを指定してください",
                       "give exactly one of all, tag, stations, devices"),
    "rollout_stages": ("段階は 100 で終わる昇順の百分率にしてください（例: 5, 25, 100）",
                       "stages: rising percentages ending at 100, e.g. [5, 25, 100]"),
    "no_release": ("リリース {version} はありません", "no release {version}"),
    "no_rollout": ("配信 #{id} はありません", "no rollout {id}"),
    "no_alert": ("警報 #{id} はありません", "no alert {id}"),
    "alert_closed": ("この警報は解除されています", "the alert is closed"),
    "alert_acknowledged": ("{by} が確認済みです", "already acknowledged by {by}"),
    "alert_closes_itself": ("この種類の警報 ({type}) は状態が戻ると自動で解除されます",
                            "a {type} alert closes by itself when its condition clears"),
}

# Pydantic's own problems (RequestValidationError) in Japanese, by error type; the English
# is pydantic's message. Placeholders are the error's ctx.
VALIDATION: dict[str, str] = {
    "missing": "入力してください",
    "greater_than_equal": "{ge} 以上にしてください",
    "less_than_equal": "{le} 以下にしてください",
    "greater_than": "{gt} より大きくしてください",
    "less_than": "{lt} より小さくしてください",
    "string_too_short": "{min_length} 文字以上にしてください",
    "string_too_long": "{max_length} 文字以内にしてください",
    "too_short": "{min_length} 個以上にしてください",
    "too_long": "{max_length} 個以内にしてください",
    "string_pattern_mismatch": "形式が正しくありません",
    "string_type": "文字列にしてください",
    "int_parsing": "整数を入力してください",
    "int_type": "整数を入力してください",
    "int_from_float": "整数を入力してください",
    "float_parsing": "数値を入力してください",
    "float_type": "数値を入力してください",
    "finite_number": "有限の数値にしてください",
    "bool_parsing": "true か false にしてください",
    "bool_type": "true か false にしてください",
    "literal_error": "{expected} のいずれかにしてください",
    "enum": "{expected} のいずれかにしてください",
    "list_type": "配列にしてください",
    "dict_type": "オブジェクトにしてください",
    "model_attributes_type": "オブジェクトにしてください",
    "json_invalid": "JSON として読めません",
    "json_type": "JSON として読めません",
    "extra_forbidden": "この項目は指定できません",
    "url_parsing": "URL が正しくありません",
    "url_scheme": "http または https の URL にしてください",
    "url_too_long": "URL が長すぎます",
    "value_error": "値が正しくありません: {error}",
}


def words(lang: str) -> dict[str, str]:
    i = LANGUAGES.index(lang) if lang in LANGUAGES else 0
    return {k: v[i] for k, v in TEXT.items()}


def word(key: str, lang: str) -> str:
    pair = TEXT.get(key)
    return key if pair is None else pair[LANGUAGES.index(lang) if lang in LANGUAGES else 0]


def pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


_ACCEPT = re.compile(r"\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]{1,5}))?")


def accepted(header: str) -> str | None:
    """The first of LANGUAGES an Accept-Language header prefers (by q), else None."""
    best: tuple[float, int, str] | None = None
    for i, part in enumerate(header.split(",")[:20]):
        m = _ACCEPT.fullmatch(part)
        if m is None or m.group(1).lower() not in LANGUAGES:
            continue
        try:
            q = float(m.group(2)) if m.group(2) else 1.0
        except ValueError:
            continue
        if q > 0 and (best is None or (q, -i) > (best[0], best[1])):
            best = (q, -i, m.group(1).lower())
    return best[2] if best else None


def request_language(request: Request, asked: str | None = None) -> str:
    """The language an API answer is in: `?lang=` (asked), else the dashboard's language
    cookie, else Accept-Language (the dashboard sends its own), else English."""
    for lang in (asked, request.query_params.get("lang"),
                 request.cookies.get(LANG_COOKIE)):
        if lang in LANGUAGES:
            return str(lang)
    return accepted(request.headers.get("accept-language", "")) or "en"


def problem(request: Request, status: int, code: str, **params: Any) -> HTTPException:
    """An HTTPException to raise, its detail PROBLEMS[code] in the request's language."""
    return HTTPException(status, text(PROBLEMS[code], request_language(request), **params))


def text(pair: tuple[str, str], lang: str, **params: Any) -> str:
    return pick(pair, lang).format(**params)



def validation_error(err: Any, lang: str) -> dict[str, str]:
    """One of pydantic's errors for the API: where (e.g. body.caution_mm), what (its type),
    the problem in lang, and the field as `detail` names it: "" for the whole body."""
    loc = [str(p) for p in err.get("loc", ())]
    kind = str(err.get("type", ""))
    ctx = {k: _plain(v) for k, v in (err.get("ctx") or {}).items()}
    problem = str(err.get("msg", ""))
    if kind in PROBLEMS:  # the API's own checks (PydanticCustomError with a PROBLEMS code)
        problem = text(PROBLEMS[kind], lang, **ctx)
    elif lang == "ja" and kind in VALIDATION:
        try:
            problem = VALIDATION[kind].format(**ctx)
        except (KeyError, IndexError, ValueError):
            pass
    where = ".".join(loc)
    field = "" if loc == ["body"] else label(loc[-1], lang) if (
        lang == "ja" and loc[-1:] and "field_" + loc[-1] in TEXT) else where
    return {"where": where, "type": kind, "problem": problem, "field": field}


def label(name: str, lang: str) -> str:
    """A field as a refusal names it: in Japanese as the dashboard's form does, in English
    by the API's own name."""
    key = "field_" + name
    return word(key, lang) if lang == "ja" and key in TEXT else name


def _plain(v: Any) -> str:
    """A ctx value as text: an error's own message (value_error) without its class name."""
    return str(v.args[0]) if isinstance(v, Exception) and v.args else str(v)
