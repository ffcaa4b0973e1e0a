"""The bureau web pages: server-rendered HTML over the same services as the API (see docs/web.md).

``auth`` (Hub OAuth, sealed session cookie, CSRF), ``pages`` (page dependencies and the HTML route
class), ``i18n`` (zh-CN / English catalog), ``render`` and ``charts`` (templates, inline SVG),
``views`` (view builders per page) and ``queries`` (read-only lookups no service offers). The router
is ``lab.api.routes.web``.
"""
