"""Request bodies the API reads: DRF's JSON parser, with JSON nested past what the decoder can recurse
into refused as a parse error (a 400) instead of escaping as a RecursionError (a 500)."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
