"""The chat platforms: each package (wecom, dingtalk, console) implements `bot.platforms.base.Platform`."""
