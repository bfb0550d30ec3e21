"""Reference data for generated traffic: real-world User-Agent strings, sites, locales, networks.

The User-Agent strings are typical of 2023-2025 traffic (browsers, phones, tablets, in-app
webviews, crawlers) plus the empty and garbage values real collectors see. The weights say how
often a *user* carries each kind, not each string.

HTTP-library agents (curl, python-requests) are left out on purpose: user-agents calls them
``other`` while pistats' bot patterns call them bots, and generated data must have one answer.
"""

from __future__ import annotations

# (kind, weight): how often a generated user has this kind of device.
DEVICE_KINDS = (
    ("desktop", 34),
    ("mobile", 38),
    ("tablet", 7),
    ("in_app", 9),
    ("bot", 6),
    ("empty", 3),
    ("garbage", 3),
)

USER_AGENTS = {
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:124.0) Gecko/20100101 Firefox/124.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
        "Mozilla/5.0 (X11; CrOS x86_64 15633.69.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.212 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 YaBrowser/23.11.0.0 Safari/537.36",
    ),
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/122.0.6261.89 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.80 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.6167.143 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 12; Redmi Note 11) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.230 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
        "Mozilla/5.0 (Linux; U; Android 11; en-US; RMX2185 Build/RP1A.201005.001) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.58 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
        "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/123.0.6312.52 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.6261.105 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 11; Lenovo TB-X606F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.193 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/124.2.1 like Chrome/124.0.6367.54 Safari/537.36",
    ),
    # App users: the SDK reports the webview's UA in context.user_agent; the HTTP client differs.
    "in_app": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/456.0.0.35.109;FBBV/574620917;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]",
        "Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/123.0.6312.99 Mobile Safari/537.36 Instagram 325.0.0.35.91 Android (33/13; 420dpi; 1080x2176; samsung; SM-G991B; o1s; exynos2100; en_GB; 583024510)",
        "Mozilla/5.0 (Linux; Android 12; M2101K6G Build/SKQ1.210908.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 musical_ly_30.7.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/US",
        "Mozilla/5.0 (Linux; Android 11; Pixel 5 Build/RQ3A.211001.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/121.0.6167.178 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/452.0.0.45.109;]",
    ),
    "bot": (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/123.0.6312.105 Safari/537.36",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot; help@moz.com)",
    ),
    "empty": ("",),
    "garbage": (
        "-",
        "Mozilla",
        "xxxxxxxx",
        "() { :; }; echo vulnerable",
        "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; Trident/6.0 ; \u00e9\u00e8\u00ea",
        "undefined",
        "null",
    ),
}

# The HTTP User-Agent of app SDK requests (the record keeps context.user_agent, which wins).
APP_HTTP_AGENTS = ("okhttp/4.12.0", "MyApp/5.12.1 CFNetwork/1494.0.7 Darwin/23.4.0", "Dalvik/2.1.0 (Linux; U; Android 13)")

SDKS = {
    "web": ("pistats-js", ("2.4.0", "2.4.1", "2.5.0", "2.3.7")),
    "ios": ("pistats-ios", ("1.8.2", "1.9.0")),
    "android": ("pistats-android", ("1.8.0", "1.9.1", "1.9.2")),
}

SCREENS = {
    "desktop": ((1920, 1080), (1366, 768), (1536, 864), (2560, 1440), (1440, 900)),
    "mobile": ((390, 844), (393, 873), (412, 915), (360, 800), (375, 667)),
    "tablet": ((810, 1080), (820, 1180), (800, 1280), (1024, 1366)),
}

LOCALES = (
    ("en-US", "America/New_York"), ("en-US", "America/Los_Angeles"), ("en-GB", "Europe/London"),
    ("de-DE", "Europe/Berlin"), ("fr-FR", "Europe/Paris"), ("es-ES", "Europe/Madrid"),
    ("pt-BR", "America/Sao_Paulo"), ("ja-JP", "Asia/Tokyo"), ("ko-KR", "Asia/Seoul"),
    ("zh-CN", "Asia/Shanghai"), ("ru-RU", "Europe/Moscow"), ("hi-IN", "Asia/Kolkata"),
    ("it-IT", "Europe/Rome"), ("nl-NL", "Europe/Amsterdam"), ("tr-TR", "Europe/Istanbul"),
    ("pl-PL", "Europe/Warsaw"), ("es-MX", "America/Mexico_City"), ("id-ID", "Asia/Jakarta"),
)

REFERRERS = (
    "", "", "", "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/",
    "https://www.facebook.com/", "https://t.co/", "https://duckduckgo.com/", "https://news.ycombinator.com/",
    "android-app://com.google.android.gm/",
)

PAGES = ("/", "/", "/pricing", "/blog", "/blog/{slug}", "/docs/{slug}", "/product/{n}", "/cart", "/account", "/search?q={slug}")
SLUGS = ("getting-started", "push-notifications-101", "release-notes", "faq", "black-friday", "winter-sale", "api", "privacy")

SITE_WORDS = ("shop", "news", "daily", "travel", "games", "recipes", "tech", "sport", "fashion", "health", "music", "books")
SITE_TLDS = ("com", "de", "fr", "co.uk", "io", "com.br", "jp", "net")

# Public address blocks sampled for IPv6 users (RIR allocations with good GeoLite2 coverage).
IPV6_BLOCKS = ("2001:200::/23", "2001:4800::/21", "2a00::/12", "2a01::/16", "2a02::/16", "2800::/12", "2803::/16", "2600::/12")

# Private, loopback, link-local, shared, documentation and unique-local addresses: no geo.
NON_PUBLIC_BLOCKS = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "fc00::/7", "fe80::/64", "::1/128", "2001:db8::/32",
)
